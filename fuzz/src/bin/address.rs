//! AFL target: `sealmail_fuzz::address_list` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::address_list(data));
}
