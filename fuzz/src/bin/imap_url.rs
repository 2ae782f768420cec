//! AFL target: `sealmail_fuzz::imap_url` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::imap_url(data));
}
