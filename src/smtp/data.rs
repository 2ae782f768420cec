//! DATA and BDAT (RFC 5321 §4.1.1.4, RFC 3030 CHUNKING): receiving the
//! message within its deadlines and size limit, then answering it.
//!
//! Imports `net::conn`, `proto::smtp` and the siblings. Invariants: only
//! `<CRLF>.<CRLF>` ends DATA; a BDAT chunk is read to its end whatever
//! happens, so the next command is found; a message over the limit is read
//! and dropped, then answered 552 (as Postfix does), and one the memory
//! budget has no room for is read and dropped, then answered 452; at most
//! about `SPILL_AT` bytes of a message arriving are in memory (the rest in
//! its encrypted spill file), held against `Smtp::memory` first; the
//! whole of DATA or of one chunk is bounded by `Timeouts::data`.

use std::io;
use std::time::{Duration, Instant};

use super::Smtp;
use super::envelope::{Client, Greeting, State};
use crate::net::conn::{Conn, with_timeout};
use crate::proto::smtp::DataReceiver;
use crate::util::Reserved;
use crate::util::spill::{Incoming, SPILL_AT};

/// RFC 5321 §4.5.3.2: 3 minutes for each DATA block (the command timeout
/// and the whole-DATA deadline are `Smtp::timeouts`).
const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(3 * 60);

pub fn too_big(max: u64) -> String {
    format!("552 5.3.4 Message size exceeds the limit of {max} bytes")
}

pub async fn data(ctx: &Smtp, conn: &mut Conn, client: &mut Client) -> io::Result<()> {
    match &client.state {
        State::Connected => return conn.reply("503 5.5.1 Send EHLO or HELO first").await,
        // RFC 2920 §3.1: with pipelining, DATA after failed RCPTs gets 554.
        State::Ready(_) => return conn.reply("554 5.5.1 No valid recipients").await,
        State::Mail(_, tx) if tx.rcpts.is_empty() => {
            return conn.reply("554 5.5.1 No valid recipients").await;
        }
        State::Mail(_, tx) if !tx.chunks.is_empty() => {
            return conn.reply("503 5.5.1 DATA cannot follow BDAT").await;
        }
        State::Mail(..) => {}
    }
    let mut receiver =
        DataReceiver::new(usize::try_from(ctx.max_message_bytes).unwrap_or(usize::MAX));
    let mut memory = ctx.memory.start();
    let mut spilled = Incoming::new(&ctx.spills);
    // Room in the budget is waited for this long, in all, per message.
    let patience = Instant::now() + MEMORY_PATIENCE;
    // A declared size is held before the client may send (as much of it
    // as stays in memory): the sender waits, or is told to come back,
    // before a byte of the message moves.
    if let State::Mail(_, tx) = &client.state
        && let Some(size) = tx.size
    {
        let size = size.min(ctx.max_message_bytes).min(IN_MEMORY);
        if !memory.receive_by(size, patience).await {
            tracing::warn!(
                bytes = size,
                "no memory left for messages in flight; DATA refused"
            );
            client.state.reset();
            return conn.reply(NO_MEMORY).await;
        }
        receiver.expect(size as usize);
    }
    conn.reply("354 Start mail input; end with <CRLF>.<CRLF>")
        .await?;
    conn.flush().await?;
    // A deadline for the whole of DATA, not just each read: a client
    // trickling a byte a minute is cut off all the same.
    let receive = async {
        loop {
            let (used, done) = receiver.feed(conn.buffered());
            conn.consume(used);
            if receiver.buffered() >= SPILL_AT
                && !receiver.dropped
                && !receiver.too_big
                && let Err(e) = spilled.put(receiver.take()).await
            {
                tracing::warn!(error = %e, "cannot spill a message; it is read and refused");
                receiver.drop_message();
                spilled.discard();
                memory.release();
            }
            hold(&mut memory, &mut receiver, patience).await;
            if done {
                return Ok(());
            }
            if with_timeout(DATA_BLOCK_TIMEOUT, conn.fill()).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    timed_out_421(with_timeout(ctx.timeouts.get().data, receive).await, conn).await?;
    let message = if receiver.too_big {
        Received::TooBig
    } else if receiver.dropped {
        Received::NoMemory
    } else {
        Received::Message(spilled, receiver.into_message())
    };
    finish(ctx, conn, client, message, memory).await
}

/// Holds what the receiver's buffer has grown to, waiting (until
/// `patience`) for room; with none, the message is dropped (and its memory
/// given back) and read to its end.
async fn hold(memory: &mut Reserved, receiver: &mut DataReceiver, patience: Instant) {
    let held = receiver.held() as u64;
    if receiver.dropped || held <= memory.held() {
        return;
    }
    if !memory.receive_by(held - memory.held(), patience).await {
        tracing::warn!(
            bytes = held,
            "no memory left for messages in flight; this one is read and refused"
        );
        receiver.drop_message();
        memory.release();
    }
}

/// What a transfer left to answer.
enum Received {
    /// A whole message: what went to its spill file, then the rest.
    Message(Incoming, Vec<u8>),
    /// Over the size limit (552).
    TooBig,
    /// No memory for it now (452).
    NoMemory,
}

pub async fn bdat(
    ctx: &Smtp,
    conn: &mut Conn,
    client: &mut Client,
    size: u64,
    last: bool,
) -> io::Result<()> {
    if let State::Connected = client.state {
        return conn.reply("503 5.5.1 Send EHLO or HELO first").await;
    }
    // The chunk is read whatever happens, so the next command is found.
    let max = ctx.max_message_bytes;
    let mut tx = match &mut client.state {
        State::Mail(_, tx) if !tx.rcpts.is_empty() => Some(tx),
        _ => None,
    };
    let patience = Instant::now() + MEMORY_PATIENCE;
    let receive = async {
        let mut left = size;
        while left > 0 {
            if conn.buffered().is_empty()
                && with_timeout(DATA_BLOCK_TIMEOUT, conn.fill()).await? == 0
            {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = conn
                .buffered()
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            if let Some(tx) = tx.as_deref_mut()
                && !tx.chunks_too_big
                && !tx.chunks_dropped
            {
                if tx.chunks.len() as u64 + tx.spilled.spilled() + take as u64 > max {
                    tx.chunks_too_big = true;
                    tx.chunks = Vec::new();
                    tx.spilled.discard();
                } else if !tx.memory.receive_by(take as u64, patience).await {
                    tracing::warn!(
                        "no memory left for messages in flight; BDAT is read and refused"
                    );
                    drop_chunks(tx);
                } else {
                    tx.chunks
                        .extend_from_slice(conn.buffered().get(..take).unwrap_or_default());
                    if tx.chunks.len() >= SPILL_AT {
                        let chunks = std::mem::take(&mut tx.chunks);
                        match tx.spilled.put(chunks).await {
                            // What stays in memory starts again from nothing.
                            Ok(()) => tx.memory.release(),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot spill a message; BDAT is read and refused");
                                drop_chunks(tx);
                            }
                        }
                    }
                }
            }
            conn.consume(take);
            left -= take as u64;
        }
        Ok(())
    };
    timed_out_421(with_timeout(ctx.timeouts.get().data, receive).await, conn).await?;
    let State::Mail(_, tx) = &mut client.state else {
        return conn.reply("554 5.5.1 No valid recipients").await;
    };
    if tx.rcpts.is_empty() {
        return conn.reply("554 5.5.1 No valid recipients").await;
    }
    if !last {
        return conn
            .reply(&format!("250 2.0.0 {size} octets received"))
            .await;
    }
    let message = if tx.chunks_too_big {
        Received::TooBig
    } else if tx.chunks_dropped {
        Received::NoMemory
    } else {
        let spilled = std::mem::replace(&mut tx.spilled, Incoming::new(&ctx.spills));
        Received::Message(spilled, std::mem::take(&mut tx.chunks))
    };
    let memory = std::mem::replace(&mut tx.memory, ctx.memory.start());
    finish(ctx, conn, client, message, memory).await
}

/// Stops keeping a BDAT message (no memory or disk for it); its chunks
/// are still read.
fn drop_chunks(tx: &mut super::envelope::Transaction) {
    tx.chunks_dropped = true;
    tx.chunks = Vec::new();
    tx.spilled.discard();
    tx.memory.release();
}

/// Tells a client that ran out of time why the connection ends.
async fn timed_out_421(result: io::Result<()>, conn: &mut Conn) -> io::Result<()> {
    if let Err(e) = &result
        && e.kind() == io::ErrorKind::TimedOut
    {
        let _ = conn.reply("421 4.4.2 Timeout; closing connection").await;
    }
    result
}

/// Answers when no memory is left for a message: the sender retries.
const NO_MEMORY: &str =
    "452 4.3.1 Insufficient system resources for this message now; try again later";

/// What of a message arriving is in memory at most (about; a read's worth
/// more): the rest goes to its spill file.
const IN_MEMORY: u64 = SPILL_AT as u64 + 64 * 1024;

/// How long a message may wait for memory while it arrives.
const MEMORY_PATIENCE: Duration = Duration::from_secs(60);
/// How long a whole message may wait for memory to be processed in: the
/// sender waits for its reply up to 10 minutes (RFC 5321 §4.5.3.2.6), so
/// it may take its turn rather than be sent back to send it all again.
const PROCESS_PATIENCE: Duration = Duration::from_secs(4 * 60);

/// Ends a transaction: delivers the message, answers, and resets the state
/// to greeted. Processing a message takes up to three more times its size
/// (headers added, the stored copy, its sealed form), and one more when it
/// is read back from its spill file; that is held from the budget first,
/// waiting for others to finish if need be.
async fn finish(
    ctx: &Smtp,
    conn: &mut Conn,
    client: &mut Client,
    message: Received,
    mut memory: Reserved,
) -> io::Result<()> {
    let mut size = 0u64;
    let mut checks = None;
    let answer = match (message, &client.state) {
        (Received::Message(spilled, tail), State::Mail(greeting, tx)) => {
            let len = spilled.spilled() + tail.len() as u64;
            size = len;
            let need = if spilled.spilled() > 0 {
                // Read back whole: what it held while arriving is given
                // back first.
                memory.release();
                4 * len
            } else {
                3 * len
            };
            if !memory.process(need, PROCESS_PATIENCE).await {
                tracing::warn!(
                    bytes = len,
                    "no memory to process a message; refused for now"
                );
                NO_MEMORY.to_string()
            } else {
                match spilled.finish(tail).await {
                    Ok(m) => {
                        let envelope = super::deliver::Envelope {
                            greeting,
                            tx,
                            account: client.account.as_ref(),
                        };
                        let delivered = super::deliver::deliver(ctx, conn, &envelope, m).await;
                        checks = delivered.checks;
                        delivered.reply
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read a spilled message back");
                        "451 4.3.0 Local error reading the message; try again later".to_string()
                    }
                }
            }
        }
        (Received::NoMemory, _) => NO_MEMORY.to_string(),
        _ => too_big(ctx.max_message_bytes),
    };
    drop(memory);
    if let State::Mail(greeting, tx) = &client.state {
        client.transactions += 1;
        log_transaction(
            ctx,
            conn,
            client.account.as_ref(),
            (greeting, tx),
            (size, checks.as_deref()),
            &answer,
        );
    }
    client.state.reset();
    conn.reply(&answer).await
}

/// Counts a message (or a recipient) by its answer: accepted (2xx),
/// deferred (4xx) or refused (5xx), the reason being the enhanced status
/// code.
pub(super) fn count(family: &'static str, port: &'static str, answer: &str) {
    let mut words = answer.split_whitespace();
    let result = match answer.as_bytes().first() {
        Some(b'2') => "accepted",
        Some(b'4') => "deferred",
        _ => "refused",
    };
    let reason = words
        .nth(1)
        .filter(|w| w.len() <= 9 && w.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .unwrap_or("none");
    crate::util::metrics::inc(
        family,
        &[("port", port), ("result", result), ("reason", reason)],
    );
}

/// The transaction's log line: who sent what to whom, what the sender
/// checks found (MX), and the answer.
fn log_transaction(
    ctx: &Smtp,
    conn: &Conn,
    account: Option<&crate::store::Account>,
    (greeting, tx): (&Greeting, &super::envelope::Transaction),
    (size, checks): (u64, Option<&str>),
    answer: &str,
) {
    use crate::util::log::{addr, addrs};
    let service = ctx.port_name();
    count("sealmail_messages_total", service, answer);
    let user = addr(account.map_or("", |a| a.address.as_str()));
    let (from, rcpts) = (addr(&tx.from), addrs(&tx.rcpts));
    tracing::info!(
        target: "sealmail::smtp",
        id = %tx.id,
        client = %conn.peer.ip(),
        port = conn.peer.port(),
        tls = %conn.tls_description(),
        helo = greeting.helo.as_str(),
        user = user.as_ref(),
        from = from.as_ref(),
        rcpts = rcpts.as_str(),
        size,
        checks = checks.unwrap_or("-"),
        reply = answer,
        ms = tx.started.elapsed().as_millis() as u64,
        "{service}"
    );
}
