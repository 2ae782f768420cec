//! AFL target: `sealmail_fuzz::autoconfig_request` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::autoconfig_request(data));
}
