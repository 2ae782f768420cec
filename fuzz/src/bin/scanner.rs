//! AFL target: `sealmail_fuzz::scanner_reply` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::scanner_reply(data));
}
