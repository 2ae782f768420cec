//! sealmail: a mail server in one binary whose mailboxes only their owners
//! can open.
//!
//! The map, lower layers first (a module imports only those above it):
//!
//! - `util`: randomness, time, durable writes. Imports nothing of ours.
//! - `proto`: pure parsers of wire and file formats (mbox today; SMTP, IMAP
//!   and POP3 grammars next). No I/O.
//! - `store`: the control plane, keys, encrypted mailbox files, search, the
//!   sealed spool, change events, and the storage interface (`Store`,
//!   `Session`, `Backend`) that protocol sessions use.
//! - `config`: the TOML file, validated into an immutable `Config`.
//! - `net`: listeners and TLS (certificates today).
//! - `app`: builds the subsystems from a `Config`, owns the executor.
//! - `cli`: the command line; the only user of anyhow.
//!
//! See `docs/architecture.md` for how data and keys move.

pub mod app;
pub mod cli;
pub mod config;
pub mod net;
pub mod pop3;
pub mod proto;
pub mod store;
pub mod util;
