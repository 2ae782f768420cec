//! sealmail: a mail server in one binary whose mailboxes only their owners
//! can open.
//!
//! The map, lower layers first (a module imports only those above it):
//!
//! - `util`: randomness, time, durable writes. Imports nothing of ours.
//! - `proto`: pure parsers of wire and file formats (mbox, POP3, SMTP and
//!   its DATA receiver, IMAP with modified UTF-7). No I/O.
//! - `store`: the control plane, keys, encrypted mailbox files, search, the
//!   sealed spool, change events, and the storage interface (`Store`,
//!   `Session`, `Backend`) that protocol sessions use.
//! - `config`: the TOML file, validated into an immutable `Config`.
//! - `net`: TLS, connections with bounded lines and STARTTLS, per-address
//!   caps, login throttling, the accept loop.
//! - `imap`, `pop3`, `smtp`: protocol sessions; they use `net`, `proto` and
//!   the `store` interface, never each other.
//! - `app`: builds the subsystems from a `Config`, binds the listeners, owns
//!   the executor and every task.
//! - `cli`: the command line; the only user of anyhow.
//!
//! See `docs/architecture.md` for how data and keys move.

pub mod app;
pub mod backup;
pub mod cli;
pub mod config;
pub mod imap;
pub mod net;
pub mod pop3;
pub mod proto;
pub mod queue;
pub mod relay;
pub mod smtp;
pub mod store;
pub mod util;
