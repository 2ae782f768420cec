//! The settings of an owner that the server reads without their password,
//! because they act when mail arrives: Sieve scripts (and ManageSieve's
//! operations on them) and the OpenPGP key mail is encrypted to.
//!
//! Imports nothing of ours. Invariants: plain serialisable values, public
//! material only (as the rest of `types`).

use serde::{Deserialize, Serialize};

/// An owner's Sieve scripts: how many, and how large each (ManageSieve's
/// HAVESPACE and PUTSCRIPT answer `QUOTA` past them).
pub const SIEVE_MAX_SCRIPTS: usize = 16;
pub const SIEVE_MAX_SCRIPT_BYTES: usize = 64 * 1024;

/// What ManageSieve asks of an alias' scripts (`Request::Sieve`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SieveOp {
    /// Stores a script the caller compiled.
    Put {
        name: String,
        script: String,
    },
    List,
    Get {
        name: String,
    },
    /// Makes `name` the active script; `None`: none is.
    Activate {
        name: Option<String>,
    },
    Delete {
        name: String,
    },
    Rename {
        from: String,
        to: String,
    },
    HaveSpace {
        name: String,
        size: u64,
    },
}

/// The answer to a [`SieveOp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SieveReply {
    Done,
    /// Script names, and whether each is the active one.
    List(Vec<(String, bool)>),
    Script(String),
    Space(bool),
}

/// Why a script operation is refused, as ManageSieve's response codes
/// name it (RFC 5804 §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScriptRefusal {
    NoSuchScript,
    Active,
    Exists,
    TooMany,
    TooLarge,
    BadName,
}

/// An owner's OpenPGP public key and what is done with it (`sealmail
/// alias pgp`): public material only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgpKey {
    /// The binary transferable public key, checked when imported.
    pub key: Vec<u8>,
    pub fingerprint: String,
    /// Mail delivered to the alias is wrapped into PGP/MIME to the key.
    pub encrypt: bool,
    /// The Subject travels only inside (protected headers).
    pub protect_subject: bool,
    /// Copies forwarded elsewhere leave encrypted too.
    pub forward: bool,
    /// The Web Key Directory serves the key.
    pub publish: bool,
}

/// An owner's Sieve scripts, when one is active: its name, and every
/// script by name (for `include`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SieveScripts {
    pub active: String,
    pub scripts: Vec<(String, String)>,
}
