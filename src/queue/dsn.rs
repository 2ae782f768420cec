//! Delivery status notifications (RFC 3464 inside RFC 6522's
//! multipart/report): the bounce a sender gets when recipients failed for
//! good or the message outlived the queue's lifetime.
//!
//! Imports `queue::{Bounce, enhanced_code}` and `util`. Invariants: the
//! report carries the original message's header, never its body; every
//! line ends in CRLF; texts from remote servers are reduced to printable
//! ASCII on one line.

use super::{Bounce, enhanced_code};
use crate::util::{random_id, rfc5322_date};

/// Everything a bounce says.
pub struct Report<'a> {
    /// This server's host name (Reporting-MTA, the From address' domain).
    pub hostname: &'a str,
    /// The envelope sender, to whom the report is addressed.
    pub sender: &'a str,
    pub arrival: i64,
    pub now: i64,
    pub failed: &'a [Bounce],
    /// The original message (only its header is quoted).
    pub original: Option<&'a [u8]>,
}

/// Builds the complete report message.
pub fn build(r: &Report<'_>) -> Vec<u8> {
    let id = random_id().unwrap_or_else(|_| format!("{}", r.now));
    let boundary = format!("=_sealmail_report_{}", id.get(..16).unwrap_or(&id));
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\n",
        r.hostname
    ));
    m.push_str(&format!("To: <{}>\r\n", one_line(r.sender)));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(r.now)));
    m.push_str(&format!("Message-ID: <{id}@{}>\r\n", r.hostname));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a MIME-encapsulated delivery status notification.\r\n\r\n");

    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    m.push_str(&format!(
        "This is the mail system at {}.\r\n\r\nYour message could not be delivered to the recipients below.\r\n\r\n",
        r.hostname
    ));
    for b in r.failed {
        let why = if b.expired {
            "gave up after retrying for 5 days"
        } else {
            "refused"
        };
        m.push_str(&format!(
            "<{}>: {why} (category: {})\r\n    {}\r\n\r\n",
            one_line(&b.address),
            b.category.as_str(),
            one_line(&b.reason)
        ));
    }

    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: message/delivery-status\r\n\r\n");
    m.push_str(&format!("Reporting-MTA: dns; {}\r\n", r.hostname));
    m.push_str(&format!("Arrival-Date: {}\r\n", rfc5322_date(r.arrival)));
    for b in r.failed {
        let status = enhanced_code(&b.reason)
            .filter(|c| !c.starts_with('2'))
            .unwrap_or_else(|| {
                if b.expired {
                    "4.4.7".into()
                } else {
                    "5.0.0".into()
                }
            });
        m.push_str("\r\n");
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            one_line(&b.address)
        ));
        m.push_str("Action: failed\r\n");
        m.push_str(&format!("Status: {status}\r\n"));
        if let Some(code) = reply_code(&b.reason) {
            m.push_str(&format!(
                "Diagnostic-Code: smtp; {}\r\n",
                one_line(b.reason.get(code..).unwrap_or(&b.reason))
            ));
        } else {
            m.push_str(&format!(
                "Diagnostic-Code: X-sealmail; {}\r\n",
                one_line(&b.reason)
            ));
        }
        m.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc5322_date(r.now)));
        m.push_str(&format!("X-Failure-Category: {}\r\n", b.category.as_str()));
    }
    m.push_str("\r\n");

    if let Some(orig) = r.original {
        m.push_str(&format!("--{boundary}\r\n"));
        m.push_str("Content-Type: text/rfc822-headers\r\n\r\n");
        let end = orig
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(orig.len(), |i| i + 2);
        m.push_str(&String::from_utf8_lossy(&orig[..end]));
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// Where an SMTP reply starts in a reason such as `RCPT TO: 550 5.1.1 …`.
fn reply_code(reason: &str) -> Option<usize> {
    let b = reason.as_bytes();
    (0..b.len().saturating_sub(3)).find(|&i| {
        (i == 0 || b[i - 1] == b' ')
            && matches!(b[i], b'4' | b'5')
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && b.get(i + 3).is_none_or(|&c| c == b' ' || c == b'-')
    })
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { ' ' })
        .take(900)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Category;

    #[test]
    fn report_has_the_three_parts() {
        let failed = [Bounce {
            rcpt_id: 1,
            address: "x@remote.test".into(),
            reason: "RCPT TO: 550 5.1.1 no such user\r\nforged".into(),
            category: Category::UnknownUser,
            expired: false,
        }];
        let orig = b"From: a@here.test\r\nSubject: hi\r\n\r\nsecret body\r\n";
        let msg = build(&Report {
            hostname: "mx.here.test",
            sender: "a@here.test",
            arrival: 0,
            now: 60,
            failed: &failed,
            original: Some(orig),
        });
        let text = String::from_utf8(msg).unwrap();
        assert!(text.contains("multipart/report; report-type=delivery-status"));
        assert!(text.contains("Final-Recipient: rfc822; x@remote.test\r\n"));
        assert!(text.contains("Status: 5.1.1\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user  forged\r\n"));
        assert!(text.contains("X-Failure-Category: unknown-user"));
        assert!(text.contains("Subject: hi"));
        assert!(!text.contains("secret body"));
        let parsed = mailparse::parse_mail(text.as_bytes()).unwrap();
        assert_eq!(parsed.subparts.len(), 3);
    }
}
