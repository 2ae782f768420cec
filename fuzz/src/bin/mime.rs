//! AFL target: `sealmail_fuzz::mime_message` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::mime_message(data));
}
