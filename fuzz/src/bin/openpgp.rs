//! AFL target: `sealmail_fuzz::openpgp` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::openpgp(data));
}
