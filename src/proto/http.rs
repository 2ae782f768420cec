//! HTTP/1.x responses as the server's own small HTTPS client reads them
//! (MTA-STS policies): the status line, the headers, and a body framed by
//! `Content-Length`, by chunks, or by the end of the connection.
//!
//! Imports nothing of ours. Invariants: `response` is total over any
//! bytes; it reads only what it was given (the caller bounds that); a
//! header block over `MAX_HEAD` bytes is refused.

/// The status line and headers of a response may be this long.
pub const MAX_HEAD: usize = 16 * 1024;

/// A response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `Content-Type`, as sent (its parameters included).
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The body's end was known (`Content-Length` or chunks), not only
    /// the connection's.
    pub framed: bool,
}

/// Reads a whole response, as received until the server closed the
/// connection (a request sent with `Connection: close`).
pub fn response(bytes: &[u8]) -> Result<Response, String> {
    let head_end = find(bytes, b"\r\n\r\n").ok_or("no end of the response header")?;
    if head_end > MAX_HEAD {
        return Err(format!("response header over {MAX_HEAD} bytes"));
    }
    let head = std::str::from_utf8(bytes.get(..head_end).unwrap_or_default())
        .map_err(|_| "response header is not UTF-8")?;
    let rest = bytes.get(head_end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!(
            "not an HTTP/1 status line: {:?}",
            super::cut(status_line, 100)
        ));
    }
    let status = code
        .parse::<u16>()
        .map_err(|_| format!("bad status code {:?}", super::cut(code, 100)))?;
    let (mut content_type, mut length, mut chunked) = (None, None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {:?}", super::cut(line, 100)));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {:?}", super::cut(value, 100)))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .to_ascii_lowercase()
                .split(',')
                .any(|t| t.trim() == "chunked");
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or("the body is shorter than its Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        content_type,
        body,
        framed: chunked || length.is_some(),
    })
}

/// A chunked body (RFC 9112 §7.1), trailers ignored.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or("a chunk size line has no end")?;
        let line = std::str::from_utf8(rest.get(..line_end).unwrap_or_default())
            .map_err(|_| "bad chunk size line")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.len() <= 8)
            .ok_or_else(|| format!("bad chunk size {:?}", super::cut(hex, 100)))?;
        rest = rest.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("a chunk is cut short")?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or("a chunk does not end with CRLF")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r = response(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello and more").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        assert_eq!(r.body, b"hello");
        let r = response(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end\n").unwrap();
        assert_eq!(
            (r.content_type, r.body.as_slice()),
            (None, &b"until the end\n"[..])
        );
        let r = response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n").unwrap();
        assert_eq!(r.body, b"hello world");
        assert_eq!(
            response(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap().status,
            404
        );
        let refused: &[(&[u8], &str)] = &[
            (b"HTTP/1.1 200 OK\r\n", "no end"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
            (b"HTTP/1.1 abc OK\r\n\r\n", "status code"),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "header line"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "shorter",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                "cut short",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX",
                "CRLF",
            ),
        ];
        for (bytes, why) in refused {
            let e = response(bytes).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
    }

    #[test]
    fn any_bytes_give_a_response_or_an_error() {
        let seeds: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ];
        for m in crate::proto::mutations(seeds, b"\r\n:0f ", 13, 3000) {
            if let Ok(r) = response(&m) {
                assert!(r.body.len() <= m.len());
            }
        }
    }
}
