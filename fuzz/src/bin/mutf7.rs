//! AFL target: `sealmail_fuzz::mailbox_name` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::mailbox_name(data));
}
