//! Failure categories of outbound delivery (full mailbox, unknown user,
//! policy, DNS, TLS, network, other), read from the relay's wording and the
//! remote server's RFC 3463 enhanced status code.
//!
//! Imports nothing of ours. Invariants: total over any text; the code wins
//! over the words, so a reply is never sorted by a word it merely quotes
//! when it carries a code.

/// Why a delivery failed, kept with the recipient and told in bounces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// The recipient's mailbox is full or over quota.
    Full,
    UnknownUser,
    /// Refused as spam, by a block list or another policy.
    Policy,
    /// The destination's DNS failed or does not exist.
    Dns,
    Tls,
    /// No connection, or it broke.
    Network,
    Other,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Full => "mailbox-full",
            Category::UnknownUser => "unknown-user",
            Category::Policy => "policy",
            Category::Dns => "dns",
            Category::Tls => "tls",
            Category::Network => "network",
            Category::Other => "other",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Category> {
        [
            Category::Full,
            Category::UnknownUser,
            Category::Policy,
            Category::Dns,
            Category::Tls,
            Category::Network,
            Category::Other,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Sorts a failure by the text the relay or the remote server gave:
    /// the enhanced status code (RFC 3463) first, then the reply's words.
    pub fn of(text: &str) -> Category {
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("tls handshake") {
            return Category::Tls;
        }
        if lower.starts_with("mx lookup")
            || lower.starts_with("address lookup")
            || lower.contains("does not exist")
            || lower.contains("null mx")
        {
            return Category::Dns;
        }
        if let Some(code) = enhanced_code(text) {
            let (class_subject, detail) = (
                code.get(2..).unwrap_or(""),
                code.rsplit('.').next().unwrap_or(""),
            );
            if class_subject.starts_with("2.2") || class_subject == "3.1" {
                return Category::Full;
            }
            if class_subject.starts_with("1.") && matches!(detail, "1" | "2" | "3" | "6" | "10") {
                return Category::UnknownUser;
            }
            if class_subject.starts_with("7.") {
                return Category::Policy;
            }
            if class_subject.starts_with("4.") {
                return Category::Network;
            }
        }
        if ["mailbox full", "quota", "insufficient storage"]
            .iter()
            .any(|w| lower.contains(w))
        {
            return Category::Full;
        }
        if [
            "user unknown",
            "no such user",
            "unknown user",
            "does not exist here",
        ]
        .iter()
        .any(|w| lower.contains(w))
        {
            return Category::UnknownUser;
        }
        if [
            "spam",
            "blocked",
            "blacklist",
            "block list",
            "policy",
            "rejected",
        ]
        .iter()
        .any(|w| lower.contains(w))
        {
            return Category::Policy;
        }
        if lower.starts_with("connecting to")
            || lower.contains("connection closed")
            || lower.contains("timed out")
            || lower.contains("no reply")
            || lower.contains("not answered")
        {
            return Category::Network;
        }
        Category::Other
    }
}

/// The first RFC 3463 code (`4.2.2`, `5.1.1`) in a reply text.
pub fn enhanced_code(text: &str) -> Option<String> {
    text.split([' ', '/', '(', ')', ';', ','])
        .find(|w| {
            let p: Vec<&str> = w.split('.').collect();
            p.len() == 3
                && matches!(p[0], "2" | "4" | "5")
                && p[1..]
                    .iter()
                    .all(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_from_replies() {
        let c = Category::of;
        assert_eq!(
            c("RCPT TO: 550 5.1.1 <x@y>: Recipient address rejected: User unknown"),
            Category::UnknownUser
        );
        assert_eq!(c("RCPT TO: 452 4.2.2 Mailbox full"), Category::Full);
        assert_eq!(
            c("end of data: 554 5.7.1 Message rejected as spam"),
            Category::Policy
        );
        assert_eq!(c("MX lookup for x.test: timed out"), Category::Dns);
        assert_eq!(c("x.test does not exist"), Category::Dns);
        assert_eq!(
            c("TLS handshake: 127.0.0.1:25: bad certificate"),
            Category::Tls
        );
        assert_eq!(
            c("connecting to 127.0.0.1:25: Connection refused"),
            Category::Network
        );
        assert_eq!(c("RCPT TO: 451 Try again later"), Category::Other);
        assert_eq!(c("RCPT TO: 550 Mailbox quota exceeded"), Category::Full);
        assert_eq!(enhanced_code("RCPT TO: 550 5.1.1 no"), Some("5.1.1".into()));
        assert_eq!(enhanced_code("RCPT TO: 550 no 1.2"), None);
    }
}
