//! Content protection at the MX, before `250`: attachments that run when
//! opened are refused (`mx.refuse_executables`, on by default; recipients
//! named in `mx.allow_executables`, by address or domain, opt out).
//!
//! Imports `store::mime` (the part tree and leaf decoding) and
//! `proto::executable` (names, first bytes, archives). Invariants: the
//! message is only read, in memory: nothing of its content is written to
//! disk or to the log, only the attachment's name in the reply; the walk
//! is bounded by the MIME limits and each leaf is decoded once.

use crate::proto::executable::{self, Why};
use crate::store::mime::{self, Leaf, Part};

/// The reply refusing a message with an executable attachment, if it has
/// one: `550 5.7.1`, naming the attachment and why.
pub fn refusal(message: &[u8], limits: mime::Limits) -> Option<String> {
    // A message the parser refuses is refused later, when it is stored.
    let parsed = mime::parse(message, limits).ok()?;
    let (name, why) = first_executable(message, &parsed.root)?;
    Some(format!(
        "550 5.7.1 Message refused: attachment {:?} is {why}, which mail here does not carry; send it another way",
        executable::printable(&name)
    ))
}

/// The first leaf that is executable by its declared type, its name or
/// its content; its name (or its type when it has none) and why.
fn first_executable(message: &[u8], root: &Part) -> Option<(String, Why)> {
    let mut stack = vec![root];
    while let Some(part) = stack.pop() {
        if !part.children.is_empty() {
            // In order: the first attachment is named.
            stack.extend(part.children.iter().rev());
            continue;
        }
        let name = file_name(part);
        let shown = name
            .clone()
            .unwrap_or_else(|| format!("{}/{}", part.mime_type, part.subtype));
        if let Some(why) = name.as_deref().and_then(executable::by_name) {
            return Some((shown, why));
        }
        if let Some(kind) = declared(part) {
            return Some((shown, Why::Program(kind)));
        }
        // Text is read as text; anything else by its bytes.
        if part.mime_type == "text" {
            continue;
        }
        if let Some(Leaf::Bytes(bytes)) = mime::decode_leaf(message, part)
            && let Some(why) = executable::by_content(&bytes)
        {
            return Some((shown, why));
        }
    }
    None
}

/// The attachment's file name: Content-Disposition's `filename`, else
/// Content-Type's `name`.
fn file_name(part: &Part) -> Option<String> {
    let from_disposition = part.disposition.as_ref().and_then(|(_, params)| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("filename"))
            .map(|(_, v)| v.clone())
    });
    from_disposition.or_else(|| {
        part.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("name"))
            .map(|(_, v)| v.clone())
    })
}

/// Content types that declare a program.
fn declared(part: &Part) -> Option<&'static str> {
    let kind = match (part.mime_type.as_str(), part.subtype.as_str()) {
        (
            "application",
            "x-msdownload"
            | "x-msdos-program"
            | "x-dosexec"
            | "x-ms-dos-executable"
            | "vnd.microsoft.portable-executable"
            | "x-ms-installer"
            | "x-msi",
        ) => "Windows program",
        ("application", "x-executable" | "x-elf" | "x-sharedlib") => "Linux/Unix program (ELF)",
        ("application", "x-mach-binary") => "macOS program (Mach-O)",
        ("application", "java-archive" | "x-java-archive") => "Java program",
        ("application", "vnd.android.package-archive") => "Android package",
        _ => return None,
    };
    Some(kind)
}

/// `FIELD: WHAT (WHY)`, the reason made printable ASCII of at most 200
/// characters: how a message says a check could not be made.
pub fn reason_header(field: &str, what: &str, why: &str) -> String {
    let why: String = why
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect();
    format!("{field}: {what} ({why})\r\n")
}

/// Whether every recipient has opted out by address or domain.
pub fn allowed_for_all(rcpts: &[String], allow: &[String]) -> bool {
    !rcpts.is_empty()
        && rcpts.iter().all(|r| {
            let domain = r.rsplit_once('@').map_or("", |(_, d)| d);
            allow
                .iter()
                .any(|a| a.eq_ignore_ascii_case(r) || a.eq_ignore_ascii_case(domain))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_attachment(headers: &str, body: &str) -> Vec<u8> {
        format!(
            "From: a@example.net\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n{headers}\r\n\r\n{body}\r\n--b--\r\n"
        )
        .into_bytes()
    }

    fn refused(m: &[u8]) -> Option<String> {
        refusal(m, mime::Limits::default())
    }

    #[test]
    fn attachments_by_name_type_and_content() {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let pe = b64(b"MZ\x90\x00\x03\x00\x00\x00program");
        let table: &[(&str, &str, Option<&str>)] = &[
            (
                "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\nContent-Transfer-Encoding: base64",
                "AAAA",
                Some("\"invoice.pdf.exe\" is a .exe file"),
            ),
            (
                "Content-Type: application/x-msdownload; name=setup",
                "AAAA",
                Some("\"setup\" is a Windows program"),
            ),
            (
                "Content-Type: image/jpeg; name=cat.jpg\r\nContent-Transfer-Encoding: base64",
                &pe,
                Some("\"cat.jpg\" is a Windows program"),
            ),
            (
                "Content-Type: application/pdf; name=report.pdf\r\nContent-Transfer-Encoding: base64",
                &b64(b"%PDF-1.7 a report"),
                None,
            ),
            // Text is text, whatever its words.
            ("Content-Type: text/plain", "MZ is how it starts", None),
        ];
        for (headers, body, want) in table {
            let got = refused(&with_attachment(headers, body));
            match want {
                Some(w) => {
                    let got = got.unwrap_or_default();
                    assert!(got.starts_with("550 5.7.1 ") && got.contains(w), "{got}");
                }
                None => assert_eq!(got, None, "{headers}"),
            }
        }
    }

    #[test]
    fn opting_out_takes_every_recipient() {
        let allow = vec!["dev@example.org".to_string(), "lab.example".to_string()];
        let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(allowed_for_all(&r(&["DEV@example.org"]), &allow));
        assert!(allowed_for_all(
            &r(&["a@lab.example", "dev@example.org"]),
            &allow
        ));
        assert!(!allowed_for_all(
            &r(&["a@lab.example", "ann@example.org"]),
            &allow
        ));
        assert!(!allowed_for_all(&[], &allow));
    }
}
