//! AFL target: `sealmail_fuzz::managesieve_commands` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::managesieve_commands(data));
}
