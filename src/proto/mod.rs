//! Pure parsers and encoders of wire and file formats (mbox, POP3, SMTP): no I/O,
//! no async.
//!
//! Imports nothing of ours. Invariants: every parser is total (any input
//! gives a value or an error, never a panic) and bounded.

pub mod mbox;
pub mod pop3;
pub mod smtp;
