//! One file per IMAP command (or family), each a handler the session's one
//! dispatch calls with the connection, the logged-in user and, in the
//! selected state, the view.
//!
//! Imports the siblings (`session`'s `Io`, `User`, `Next`; `view`,
//! `render`, `fetch`), `proto::imap` and the `store` interface.
//! Invariants: a handler writes exactly one tagged reply (or closes), and
//! its untagged updates before it.

pub mod append;
pub mod compress;
pub mod copy;
pub mod enable;
pub mod expunge;
pub mod fetch;
pub mod idle;
pub mod list;
pub mod login;
pub mod mailboxes;
pub mod metadata;
pub mod quota;
pub mod search;
pub mod select;
pub mod status;
pub mod store;
