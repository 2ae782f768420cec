//! Pure parsers and encoders of wire and file formats (mbox, POP3, SMTP,
//! IMAP): no I/O,
//! no async.
//!
//! Imports nothing of ours but `util`'s pure helpers. Invariants: every parser is total (any input
//! gives a value or an error, never a panic) and bounded.

#![deny(clippy::indexing_slicing)]

pub mod imap;
pub mod mbox;
pub mod mutf7;
pub mod pop3;
pub mod sasl;
pub mod smtp;
