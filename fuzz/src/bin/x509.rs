//! AFL target: `sealmail_fuzz::certificate` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::certificate(data));
}
