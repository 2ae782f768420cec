//! rspamd's verdict on a message: the JSON its normal worker answers to
//! `POST /checkv2` (the action, the score against the score the action
//! needs, and the names of the symbols that matched).
//!
//! Imports nothing of ours (serde_json). Invariants: `reply` is total over
//! any bytes; an action it does not know is an error, not a guess; at most
//! `MAX_SYMBOLS` symbol names of at most `MAX_NAME` printable characters
//! are kept.

use serde::Deserialize;

/// Symbol names kept of one reply (for a header; rspamd may list many).
pub const MAX_SYMBOLS: usize = 50;

/// A symbol name is cut to this many characters.
pub const MAX_NAME: usize = 64;

/// What rspamd says to do (its standard actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    NoAction,
    Greylist,
    AddHeader,
    RewriteSubject,
    SoftReject,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NoAction => "no action",
            Action::Greylist => "greylist",
            Action::AddHeader => "add header",
            Action::RewriteSubject => "rewrite subject",
            Action::SoftReject => "soft reject",
            Action::Reject => "reject",
        }
    }
}

/// The verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub action: Action,
    pub score: f64,
    pub required_score: f64,
    /// Matched symbols, sorted by name.
    pub symbols: Vec<String>,
}

#[derive(Deserialize)]
struct Raw {
    action: String,
    #[serde(default)]
    score: f64,
    #[serde(default)]
    required_score: f64,
    #[serde(default)]
    symbols: serde_json::Map<String, serde_json::Value>,
}

/// Reads a `/checkv2` reply.
pub fn reply(bytes: &[u8]) -> Result<Verdict, String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not rspamd's JSON: {e}"))?;
    let action = match raw.action.as_str() {
        "no action" => Action::NoAction,
        "greylist" => Action::Greylist,
        "add header" => Action::AddHeader,
        "rewrite subject" => Action::RewriteSubject,
        "soft reject" => Action::SoftReject,
        "reject" => Action::Reject,
        other => {
            return Err(format!("unknown action {:?}", super::cut(other, MAX_NAME)));
        }
    };
    let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
    let mut symbols: Vec<String> = raw
        .symbols
        .keys()
        .take(MAX_SYMBOLS)
        .map(|k| {
            k.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(MAX_NAME)
                .collect::<String>()
        })
        .filter(|k| !k.is_empty())
        .collect();
    symbols.sort();
    Ok(Verdict {
        action,
        score: finite(raw.score),
        required_score: finite(raw.required_score),
        symbols,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let v = reply(br#"{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0}},"messages":{"smtp_message":"Gtube pattern"}}"#).unwrap();
        assert_eq!(v.action, Action::Reject);
        assert_eq!((v.score, v.required_score), (15.0, 15.0));
        assert_eq!(v.symbols, vec!["GTUBE"]);
        let v = reply(br#"{"score":12.9,"required_score":15.0,"action":"add header","symbols":{"Z":{},"A B\r\n":{}}}"#).unwrap();
        assert_eq!(v.action, Action::AddHeader);
        // Names are kept printable; sorted.
        assert_eq!(v.symbols, vec!["AB", "Z"]);
        for action in ["no action", "greylist", "rewrite subject", "soft reject"] {
            let json = format!(r#"{{"action":"{action}"}}"#);
            assert_eq!(reply(json.as_bytes()).unwrap().action.as_str(), action);
        }
        assert!(
            reply(br#"{"action":"discard"}"#)
                .unwrap_err()
                .contains("unknown action")
        );
        assert!(reply(b"<html>").unwrap_err().contains("not rspamd's JSON"));
        assert!(reply(br#"{"score":1}"#).is_err());
    }

    #[test]
    fn any_bytes_give_a_verdict_or_an_error() {
        let seeds: &[&[u8]] = &[br#"{"action":"reject","score":15.0,"symbols":{"GTUBE":{}}}"#];
        for m in crate::proto::mutations(seeds, b"{}\":,\\ ", 17, 2000) {
            if let Ok(v) = reply(&m) {
                assert!(v.symbols.len() <= MAX_SYMBOLS && v.score.is_finite());
            }
        }
    }
}
