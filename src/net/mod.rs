//! Network plumbing shared by the protocol listeners: TLS, connections with
//! bounded line reading and STARTTLS, per-address limits, login
//! throttling and inbound mail rates, and the accept loop that runs one
//! task per connection.
//!
//! Imports `util` only; protocol sessions import this, never the reverse.
//! Invariants: a panic in a connection task is caught, logged and counted
//! (tests assert the count stays zero); every connection task holds a token
//! that shutdown waits on.

pub mod audit;
pub mod conn;
pub mod limits;
pub mod listener;
pub mod rate;
pub mod tls;
