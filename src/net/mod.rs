//! Network plumbing shared by the protocol listeners. Today: the TLS
//! certificate a new data directory starts with.
//!
//! Imports `util` only. Invariants: private keys are written mode 0600 and
//! durably.

pub mod tls;
