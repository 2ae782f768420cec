//! AFL target: `sealmail_fuzz::dmarc_report` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::dmarc_report(data));
}
