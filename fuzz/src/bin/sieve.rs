//! AFL target: `sealmail_fuzz::sieve_script` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::sieve_script(data));
}
