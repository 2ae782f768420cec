//! AFL target: `sealmail_fuzz::pop3_command` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::pop3_command(data));
}
