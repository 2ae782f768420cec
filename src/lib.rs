//! sealmail: a mail server in one binary whose mailboxes only their owners
//! can open.
//!
//! The map, lower layers first. Each line names what the module may import
//! of ours; `tests/layers.rs` reads these lines and fails the build's tests
//! when a module imports anything else, so this list is the rule, not a
//! description of it.
//!
//! - `util` (imports nothing): randomness, time and clocks, durable
//!   writes, IP networks.
//! - `proto` (imports `util`): pure parsers and encoders of wire and file
//!   formats: IMAP with modified UTF-7, SMTP and its DATA receiver, POP3,
//!   SASL, mbox, results header fields, executable attachments and the
//!   archives around them (zip, gzip, RAR, 7z), clamd's replies, rspamd's
//!   verdicts, HTTP responses, MTA-STS policies, certificates for DANE,
//!   client autoconfiguration documents. No I/O, no async, total over any
//!   input.
//! - `dns` (imports nothing): the shared resolver (SPF/DKIM/DMARC records,
//!   MX lookups).
//! - `store` (imports `openpgp`, `util`): the control plane, keys, encrypted mailbox
//!   files, MIME scanning, search, the sealed spool, change events, and the
//!   storage interface (`Store`, `Session`, `Backend`) that sessions use.
//! - `openpgp` (imports `util`): owners' public keys checked, mail
//!   wrapped into PGP/MIME to them on arrival, Web Key Directory names.
//! - `sieve` (imports `util`): Sieve scripts compiled and run against a
//!   message in memory (the interpreter asks its host for includes,
//!   folders and reply tracking), ManageSieve's protocol.
//! - `config` (imports `proto`, `store`, `util`): the TOML file, validated into an
//!   immutable `Config`, and the policies it hands to subsystems.
//! - `net` (imports `util`): TLS, connections with bounded lines and
//!   STARTTLS, per-address caps, login throttling, inbound mail rates, the
//!   accept loop.
//! - `cluster` (imports `net`, `openpgp`, `store` interface, `util`): the link
//!   between a primary and its secondaries: the secondary's remote
//!   storage backend and the primary's link listener.
//! - `relay` (imports `config`, `dns`, `net`, `proto`, `store`, `util`): mail
//!   that leaves from memory: the SMTP client with its TLS policies
//!   (`relay.tls_policy`, MTA-STS), SRS, webhooks.
//! - `queue` (imports `config`, `relay`, `store`, `util`): the outbound
//!   queue, its delivery rounds and bounce reports.
//! - `backup` (imports `config`, `store`, `util`): the scheduler, snapshots,
//!   targets, retention and restore.
//! - `imap` (imports `net`, `proto`, `store` interface, `util`): IMAP
//!   sessions.
//! - `pop3` (imports `net`, `proto`, `store` interface, `util`): POP3
//!   sessions.
//! - `smtp` (imports `config`, `dns`, `net`, `openpgp`, `proto`, `queue`, `relay`, `sieve`,
//!   `store` interface, `util`): MX and submission sessions.
//! - `managesieve` (imports `net`, `proto`, `sieve`, `store` interface,
//!   `util`): ManageSieve sessions (owners' Sieve scripts).
//! - `web` (imports `config`, `net`, `openpgp`, `proto`, `store` interface, `util`):
//!   the HTTP(S) listener (hyper on smol): ACME certificates, MTA-STS
//!   policies, client autoconfiguration, Prometheus metrics.
//! - `app` (imports `backup`, `cluster`, `config`, `dns`, `imap`, `managesieve`, `net`, `pop3`, `proto`, `queue`, `sieve`,
//!   `relay`, `smtp`, `store`, `util`, `web`): builds the subsystems from a
//!   `Config`, binds the listeners, owns the executor and every task.
//! - `cli` (imports `app`, `backup`, `cluster`, `config`, `dns`, `net`, `openpgp`, `proto`, `sieve`,
//!   `queue`, `relay`, `smtp`, `store`, `util`): the command line (with the
//!   IMAP client of `migrate`); the only user of anyhow.
//!
//! "`store` interface" means the items at `store`'s root and its modules of
//! plain values (`types`, `mime`, `order`, `search`, `events`): a session
//! never reaches the files, keys or databases behind the interface, so the
//! same session code runs over a local or a remote store.
//!
//! See `docs/architecture.md` for how data and keys move.

pub mod app;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod imap;
pub mod managesieve;
pub mod net;
pub mod openpgp;
pub mod pop3;
pub mod proto;
pub mod queue;
pub mod relay;
pub mod sieve;
pub mod smtp;
pub mod store;
pub mod util;
pub mod web;
