//! AFL target: `sealmail_fuzz::archive` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::archive(data));
}
