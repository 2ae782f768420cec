//! `sealmail migrate ADDR --from imaps://USER@HOST[:PORT]`: copies every
//! folder, message, flag and internal date of a mailbox on another IMAP
//! server into a sealmail mailbox, as imapsync does.
//!
//! Imports `net::tls` (the client configurations), `proto::mutf7`,
//! `proto::imap` (IMAP dates) and the import machinery of its
//! sibling `mailbox`. Invariants: the source is only read (EXAMINE,
//! BODY.PEEK); messages come in batches of bounded size and are appended
//! through the same importer as `sealmail import`, which skips what a
//! folder holds already, so a run interrupted at any point and run again
//! copies every message exactly once; TLS is required except to a loopback
//! address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proto::imap::{Token, parse_response};
use crate::proto::mbox;

/// Bytes of messages fetched at once (one message when it is larger).
const BATCH_BYTES: u64 = 8 << 20;
/// How long the source may keep us waiting for a line.
const TIMEOUT: Duration = Duration::from_secs(120);
/// The longest response line or literal taken from the source (a message
/// larger than sealmail accepts is refused anyway).
const MAX_LITERAL: u64 = 1 << 30;

/// Where to copy from: `imaps://user@host[:993]` (TLS) or
/// `imap://user@host[:143]` (STARTTLS; plain only to a loopback address).
pub struct Source {
    pub tls: bool,
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl Source {
    pub fn parse(url: &str) -> Result<Source> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("imaps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("imap://") {
            (false, r)
        } else {
            bail!("{url:?}: expected imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT]");
        };
        let rest = rest.trim_end_matches('/');
        let (user, hostport) = rest
            .rsplit_once('@')
            .with_context(|| format!("{url:?}: the user comes before @"))?;
        let user =
            percent_decode(user).with_context(|| format!("{url:?}: bad %-escape in the user"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse().with_context(|| format!("{url:?}: bad port"))?,
            ),
            _ => (hostport.to_string(), if tls { 993 } else { 143 }),
        };
        if user.is_empty() || host.is_empty() {
            bail!("{url:?}: expected imaps://USER@HOST[:PORT]");
        }
        Ok(Source {
            tls,
            user,
            host,
            port,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The connection to the source, plain until TLS starts.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An IMAP client that sends one command at a time.
struct Client {
    io: BufReader<Stream>,
    tag: u32,
}

impl Client {
    fn connect(source: &Source, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Client> {
        let tcp = TcpStream::connect((source.host.as_str(), source.port))
            .with_context(|| format!("cannot connect to {}:{}", source.host, source.port))?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        let loopback = tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback());
        let stream = match (&tls, source.tls) {
            (Some(config), true) => {
                Stream::Tls(Box::new(handshake(config.clone(), &source.host, tcp)?))
            }
            _ => Stream::Plain(tcp),
        };
        let mut client = Client {
            io: BufReader::new(stream),
            tag: 0,
        };
        let greeting = client.response()?;
        if greeting
            .get(1)
            .and_then(Token::atom)
            .is_none_or(|s| !s.eq_ignore_ascii_case("OK"))
        {
            bail!("{} did not greet with OK", source.host);
        }
        if !source.tls {
            match tls {
                Some(config) if !loopback => {
                    client.command("STARTTLS", |_| Ok(()))?;
                    let Stream::Plain(tcp) = client.io.into_inner() else {
                        bail!("TLS started twice");
                    };
                    client = Client {
                        io: BufReader::new(Stream::Tls(Box::new(handshake(
                            config,
                            &source.host,
                            tcp,
                        )?))),
                        tag: client.tag,
                    };
                }
                _ if loopback => {}
                _ => bail!(
                    "imap:// to {} would send the password in clear: use imaps://",
                    source.host
                ),
            }
        }
        Ok(client)
    }

    /// Reads one response: its tokens, literals included.
    fn response(&mut self) -> Result<Vec<Token>> {
        let mut text: Vec<u8> = Vec::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut self.io)
                .take(MAX_LITERAL)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                bail!("the source closed the connection");
            }
            let body = line
                .strip_suffix(b"\r\n")
                .or_else(|| line.strip_suffix(b"\n"))
                .unwrap_or(&line);
            // A literal announced at the end of the line: `{N}`.
            let announced = body
                .strip_suffix(b"}")
                .and_then(|b| b.iter().rposition(|&c| c == b'{').map(|i| (i, b)))
                .and_then(|(i, b)| {
                    let digits = b.get(i + 1..)?;
                    let n: u64 = std::str::from_utf8(digits)
                        .ok()?
                        .trim_end_matches('+')
                        .parse()
                        .ok()?;
                    Some((i, n))
                });
            match announced {
                Some((at, size)) if size <= MAX_LITERAL => {
                    text.extend_from_slice(body.get(..at).unwrap_or_default());
                    let mut literal = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    (&mut self.io).take(size).read_to_end(&mut literal)?;
                    if literal.len() as u64 != size {
                        bail!("the source closed the connection inside a literal");
                    }
                    // In its place, what `parse_response` looks for.
                    text.extend_from_slice(format!("\0{}\0", literals.len()).as_bytes());
                    literals.push(literal);
                }
                Some(_) => bail!("the source sent a literal over 1 GiB"),
                None => {
                    text.extend_from_slice(body);
                    break;
                }
            }
        }
        parse_response(&text, literals).map_err(|e| anyhow::anyhow!("the source sent {e}"))
    }

    /// Sends `command`, hands each untagged response to `each`, and
    /// returns once the tagged OK came (an error for NO or BAD).
    fn command(
        &mut self,
        command: &str,
        mut each: impl FnMut(Vec<Token>) -> Result<()>,
    ) -> Result<()> {
        self.tag += 1;
        let tag = format!("m{}", self.tag);
        let stream = self.io.get_mut();
        stream.write_all(format!("{tag} {command}\r\n").as_bytes())?;
        stream.flush()?;
        loop {
            let response = self.response()?;
            match response.first().and_then(Token::atom) {
                Some(t) if t == tag => {
                    let status = response.get(1).and_then(Token::atom).unwrap_or("");
                    if status.eq_ignore_ascii_case("OK") {
                        return Ok(());
                    }
                    let text: Vec<String> = response
                        .iter()
                        .skip(2)
                        .filter_map(|t| t.bytes().map(|b| String::from_utf8_lossy(b).to_string()))
                        .collect();
                    let verb = command.split(' ').next().unwrap_or("");
                    bail!(
                        "the source answered {verb} with {status} {}",
                        text.join(" ")
                    );
                }
                Some("*") => each(response)?,
                // Continuation requests and anything else: not asked for.
                _ => {}
            }
        }
    }
}

fn handshake(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .with_context(|| format!("{host:?} is not a host name"))?;
    let conn = rustls::ClientConnection::new(config, name)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .with_context(|| format!("TLS with {host} failed"))?;
    }
    Ok(stream)
}

/// `s` as an IMAP string: quoted when it can be.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A folder of the source: its name there, and here.
struct Folder {
    source: String,
    here: String,
}

/// The selectable folders of the source, with their names mapped to ours
/// (hierarchy delimiter `/`, modified UTF-7 decoded, INBOX as INBOX).
fn folders(client: &mut Client) -> Result<Vec<Folder>> {
    let mut out = Vec::new();
    client.command("LIST \"\" \"*\"", |r| {
        let (Some(Token::List(flags)), Some(delim), Some(name)) = (r.get(2), r.get(3), r.get(4))
        else {
            return Ok(());
        };
        if flags.iter().filter_map(Token::atom).any(|f| {
            f.eq_ignore_ascii_case("\\Noselect") || f.eq_ignore_ascii_case("\\NonExistent")
        }) {
            return Ok(());
        }
        let Some(raw) = name.bytes() else {
            return Ok(());
        };
        let source = String::from_utf8_lossy(raw).to_string();
        let decoded = crate::proto::mutf7::mutf7_decode(raw).unwrap_or_else(|_| source.clone());
        let here = match delim.bytes().and_then(|d| std::str::from_utf8(d).ok()) {
            Some(d) if d != "/" && !d.is_empty() => decoded.replace('/', "_").replace(d, "/"),
            _ => decoded,
        };
        let here = if here.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            here
        };
        out.push(Folder { source, here });
        Ok(())
    })?;
    out.sort_by(|a, b| a.here.cmp(&b.here));
    Ok(out)
}

/// The pairs of a FETCH response's list, by name.
fn fetch_items(response: &[Token]) -> Option<&[Token]> {
    match (response.get(2).and_then(Token::atom), response.get(3)) {
        (Some(f), Some(Token::List(items))) if f.eq_ignore_ascii_case("FETCH") => Some(items),
        _ => None,
    }
}

fn item<'a>(items: &'a [Token], name: &str) -> Option<&'a Token> {
    items
        .chunks(2)
        .find(|pair| {
            pair.first()
                .and_then(Token::atom)
                .is_some_and(|a| a.eq_ignore_ascii_case(name))
        })
        .and_then(|pair| pair.get(1))
}

/// A message as the source gave it: its bytes, internal date and flags.
type Fetched = (Vec<u8>, Option<i64>, (u8, Vec<String>));

/// IMAP flags as the store keeps them: system bits and keywords.
fn flags(list: Option<&Token>) -> (u8, Vec<String>) {
    let Some(Token::List(list)) = list else {
        return (0, Vec::new());
    };
    let mut system = 0;
    let mut keywords = Vec::new();
    for f in list.iter().filter_map(Token::atom) {
        match f.to_ascii_lowercase().as_str() {
            "\\seen" => system |= mbox::SEEN,
            "\\answered" => system |= mbox::ANSWERED,
            "\\flagged" => system |= mbox::FLAGGED,
            "\\deleted" => system |= mbox::DELETED,
            "\\draft" => system |= mbox::DRAFT,
            k if !k.starts_with('\\') => keywords.push(f.to_string()),
            _ => {}
        }
    }
    (system, keywords)
}

/// `sealmail migrate`: every selectable folder of the source into the
/// mailbox, through the importer (duplicates skipped, folders created).
pub fn migrate(
    config: &crate::config::Config,
    address: &str,
    source: &Source,
    pin: Option<[u8; 32]>,
) -> Result<()> {
    let session = super::mailbox::unlock(config, address)?;
    let password = super::read_secret(
        &format!("password of {} at {}", source.user, source.host),
        "SEALMAIL_SOURCE_PASSWORD",
    )?;
    let tls = Some(match pin {
        Some(pin) => crate::net::tls::pinned_client(pin),
        None => crate::net::tls::verifying_client(&[]),
    });
    let mut client = Client::connect(source, tls)?;
    client
        .command(
            &format!("LOGIN {} {}", quoted(&source.user), quoted(&password)),
            |_| Ok(()),
        )
        .context("the source refused the login")?;
    let folders = folders(&mut client)?;
    let options = super::mailbox::ImportOptions {
        folder: None,
        create: true,
        date_from: super::mailbox::DateFrom::Auto,
        allow_duplicates: false,
    };
    let tally = smol::block_on(async {
        let mut importer =
            super::mailbox::Importer::new(&session, &options, config.limits.max_message_bytes)
                .await?
                .encrypting(super::mailbox::arrival_key(config, address)?);
        for folder in &folders {
            importer.folder(&folder.here).await?;
            copy_folder(&mut client, &mut importer, folder).await?;
        }
        importer.finish().await
    })?;
    let _ = client.command("LOGOUT", |_| Ok(()));
    outln!(
        "copied {} messages in {} folders from {}@{} into {address}; {} there already; {} refused",
        tally.imported,
        folders.len(),
        source.user,
        source.host,
        tally.duplicates,
        tally.refused
    );
    for reason in &tally.reasons {
        outln!("  refused {reason}");
    }
    Ok(())
}

async fn copy_folder(
    client: &mut Client,
    importer: &mut super::mailbox::Importer<'_>,
    folder: &Folder,
) -> Result<()> {
    client.command(&format!("EXAMINE {}", quoted(&folder.source)), |_| Ok(()))?;
    let mut sizes: Vec<(u32, u64)> = Vec::new();
    client.command("UID FETCH 1:* (UID RFC822.SIZE)", |r| {
        if let Some(items) = fetch_items(&r) {
            let uid = item(items, "UID")
                .and_then(Token::atom)
                .and_then(|u| u.parse().ok());
            let size = item(items, "RFC822.SIZE")
                .and_then(Token::atom)
                .and_then(|s| s.parse().ok());
            if let (Some(uid), Some(size)) = (uid, size) {
                sizes.push((uid, size));
            }
        }
        Ok(())
    })?;
    sizes.sort_unstable();
    let max = importer.max_bytes();
    let mut batch: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    let mut iter = sizes.iter().peekable();
    while let Some(&(uid, size)) = iter.next() {
        if size > max {
            importer.refuse(
                &format!("{} UID {uid}", folder.source),
                &format!("larger than limits.max_message_size ({max} bytes)"),
            );
        } else {
            batch.push(uid);
            bytes += size;
        }
        let full = iter
            .peek()
            .is_none_or(|(_, next)| bytes + next > BATCH_BYTES);
        if !full || batch.is_empty() {
            continue;
        }
        let set: Vec<String> = batch.iter().map(u32::to_string).collect();
        let mut got: Vec<Fetched> = Vec::new();
        client.command(
            &format!(
                "UID FETCH {} (UID FLAGS INTERNALDATE BODY.PEEK[])",
                set.join(",")
            ),
            |r| {
                let Some(items) = fetch_items(&r) else {
                    return Ok(());
                };
                let Some(body) = item(items, "BODY[]").and_then(Token::bytes) else {
                    return Ok(());
                };
                let date = item(items, "INTERNALDATE")
                    .and_then(Token::bytes)
                    .and_then(crate::proto::imap::parse_date_time);
                got.push((body.to_vec(), date, flags(item(items, "FLAGS"))));
                Ok(())
            },
        )?;
        for (body, date, flags) in got {
            importer
                .add(&folder.here, mbox::to_crlf(&body), date, Some(flags))
                .await?;
        }
        batch.clear();
        bytes = 0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls() {
        let s = Source::parse("imaps://ann%40old.example@imap.old.example").unwrap();
        assert_eq!(
            (s.tls, s.user.as_str(), s.host.as_str(), s.port),
            (true, "ann@old.example", "imap.old.example", 993)
        );
        let s = Source::parse("imap://bo@127.0.0.1:10143/").unwrap();
        assert_eq!(
            (s.tls, s.user.as_str(), s.host.as_str(), s.port),
            (false, "bo", "127.0.0.1", 10143)
        );
        let s = Source::parse("imaps://bo@[::1]:993").unwrap();
        assert_eq!(s.host, "::1");
        for bad in [
            "pop3://a@b",
            "imaps://host",
            "imaps://@host",
            "imaps://a@h:port",
            "imaps://a%zz@h",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fetch_responses_give_their_items() {
        let literals = vec![b"Subject: x\r\n\r\nbody)\"\r\n".to_vec()];
        let text = b"* 3 FETCH (UID 7 FLAGS (\\Seen $label1 \\Recent) INTERNALDATE \"02-Dec-2026 09:00:00 +0000\" BODY[] \x000\x00)";
        let t = parse_response(text, literals).unwrap();
        let items = fetch_items(&t).unwrap();
        assert_eq!(item(items, "UID"), Some(&Token::Atom("7".into())));
        assert_eq!(
            flags(item(items, "FLAGS")),
            (mbox::SEEN, vec!["$label1".to_string()])
        );
        assert_eq!(
            item(items, "BODY[]").and_then(Token::bytes),
            Some(b"Subject: x\r\n\r\nbody)\"\r\n".as_slice())
        );
        assert_eq!(item(items, "RFC822.SIZE"), None);
        assert!(fetch_items(&parse_response(b"* 3 EXPUNGE", vec![]).unwrap()).is_none());
    }
}
