//! AFL target: `sealmail_fuzz::smtp_data` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::smtp_data(data));
}
