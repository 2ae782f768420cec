//! AFL target: `sealmail_fuzz::mbox_file` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::mbox_file(data));
}
