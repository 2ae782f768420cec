//! AFL target: `sealmail_fuzz::http_response` (see the library's docs).
fn main() {
    afl::fuzz!(|data: &[u8]| sealmail_fuzz::http_response(data));
}
