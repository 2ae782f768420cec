//! AFL target: `sealmail_fuzz::mta_sts_policy` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::mta_sts_policy(data));
}
