//! DNSSEC-authenticated answers for DANE (RFC 7672): sealmail does not
//! validate DNSSEC itself; like Postfix, it asks a validating resolver on
//! loopback (unbound, say) with the DO and AD bits set and believes the AD
//! bit of its answer. An AD bit from a resolver elsewhere could be forged
//! on the way, so a resolver that is not on loopback vouches for nothing
//! and DANE stays off.
//!
//! Imports hickory-proto (through mail-auth's resolver) for the wire
//! format. Invariants: a query is bounded by `TIMEOUT` per attempt, two
//! attempts over UDP, TCP when the answer was truncated; an answer whose
//! id or question does not match the query is ignored; at most
//! `MAX_ANSWER` bytes are read.

use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use mail_auth::hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query};
use mail_auth::hickory_resolver::proto::rr::{Name, RData, RecordType};

use super::LookupError;

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_ANSWER: usize = 65_535;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// An answer and whether the resolver authenticated it.
struct Answer {
    authenticated: bool,
    /// NXDOMAIN or no records of the type.
    empty: bool,
    tlsa: Vec<Tlsa>,
}

/// The resolver that may vouch for answers: the first one configured, or
/// the first of /etc/resolv.conf, when it is on loopback.
pub fn validating_resolver(configured: &[SocketAddr]) -> Option<SocketAddr> {
    let first = match configured.first() {
        Some(a) => Some(*a),
        None => std::fs::read_to_string("/etc/resolv.conf")
            .ok()?
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .next(),
    }?;
    first.ip().is_loopback().then_some(first)
}

/// The DANE records of a host's port (`_PORT._tcp.HOST`), when DNSSEC
/// vouches for the host: `Ok(None)` when its address records are not
/// authenticated (DANE does not apply, RFC 7672 §2.2.2) or it has no TLSA
/// records; `Err` when the host is secure but its TLSA records could not
/// be read (the delivery must wait).
pub async fn tlsa(
    resolver: SocketAddr,
    host: &str,
    port: u16,
) -> Result<Option<Vec<Tlsa>>, LookupError> {
    let host = host.trim_end_matches('.');
    // An address answer that is not authenticated, or no answer (a
    // resolver without EDNS, say), leaves DANE out: only a host DNSSEC
    // vouches for may have its mail held for its TLSA records.
    match ask(resolver, host, RecordType::A).await {
        Ok(address) if address.authenticated => {}
        Ok(_) | Err(_) => return Ok(None),
    }
    let answer = ask(resolver, &format!("_{port}._tcp.{host}"), RecordType::TLSA).await?;
    if !answer.authenticated || answer.empty || answer.tlsa.is_empty() {
        return Ok(None);
    }
    Ok(Some(answer.tlsa))
}

async fn ask(resolver: SocketAddr, name: &str, rtype: RecordType) -> Result<Answer, LookupError> {
    let temporary = |why: String| LookupError::Temporary(format!("{name} {rtype}: {why}"));
    let fqdn = Name::from_ascii(format!("{name}.")).map_err(|e| temporary(e.to_string()))?;
    let id = {
        use std::hash::{BuildHasher, Hasher};
        // Any unpredictable id will do on loopback.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(name.as_bytes());
        h.finish() as u16
    };
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    // RFC 6840 §5.7: AD in a query asks for AD in the answer.
    query.metadata.authentic_data = true;
    query.add_query(Query::query(fqdn.clone(), rtype));
    let mut edns = Edns::new();
    edns.enable_dnssec();
    edns.set_max_payload(4096);
    query.set_edns(edns);
    let wire = query.to_vec().map_err(|e| temporary(e.to_string()))?;
    let mut last = String::from("no answer");
    for _ in 0..2 {
        let reply = match within(udp(resolver, &wire)).await {
            Ok(r) => r,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let Ok(mut m) = Message::from_vec(&reply) else {
            last = "an answer that does not parse".into();
            continue;
        };
        if m.metadata.truncation {
            let r = within(tcp(resolver, &wire))
                .await
                .map_err(|e| temporary(e.to_string()))?;
            m = Message::from_vec(&r).map_err(|e| temporary(e.to_string()))?;
        }
        if m.metadata.id != id || m.queries.first().map(|q| q.name()) != Some(&fqdn) {
            last = "an answer to another question".into();
            continue;
        }
        return read(&m, rtype).map_err(temporary);
    }
    Err(temporary(last))
}

fn read(m: &Message, rtype: RecordType) -> Result<Answer, String> {
    use mail_auth::hickory_resolver::proto::op::ResponseCode;
    let code = m.metadata.response_code;
    let empty = match code {
        ResponseCode::NoError => !m.answers.iter().any(|r| r.record_type() == rtype),
        ResponseCode::NXDomain => true,
        other => return Err(format!("the resolver answered {other}")),
    };
    let tlsa = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TLSA(t) => Some(Tlsa {
                usage: u8::from(t.cert_usage),
                selector: u8::from(t.selector),
                matching: u8::from(t.matching),
                data: t.cert_data.clone(),
            }),
            _ => None,
        })
        .collect();
    Ok(Answer {
        authenticated: m.metadata.authentic_data,
        empty,
        tlsa,
    })
}

async fn within<T>(fut: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    futures_lite::future::or(fut, async {
        smol::Timer::after(TIMEOUT).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    })
    .await
}

async fn udp(resolver: SocketAddr, wire: &[u8]) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = if resolver.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let socket = Async::<UdpSocket>::bind(bind)?;
    socket.get_ref().connect(resolver)?;
    socket.send(wire).await?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

async fn tcp(resolver: SocketAddr, wire: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = Async::<TcpStream>::connect(resolver).await?;
    let len = u16::try_from(wire.len()).map_err(io::Error::other)?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(wire).await?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len)).min(MAX_ANSWER);
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}
