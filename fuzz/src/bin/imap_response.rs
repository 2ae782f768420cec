//! AFL target: `sealmail_fuzz::imap_response` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::imap_response(data));
}
