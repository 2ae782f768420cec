//! DATA and BDAT (RFC 5321 §4.1.1.4, RFC 3030 CHUNKING): receiving the
//! message within its deadlines and size limit, then answering it.
//!
//! Imports `net::conn`, `proto::smtp` and the siblings. Invariants: only
//! `<CRLF>.<CRLF>` ends DATA; a BDAT chunk is read to its end whatever
//! happens, so the next command is found; a message over the limit is read
//! and dropped, then answered 552 (as Postfix does); the whole of DATA or
//! of one chunk is bounded by `Timeouts::data`.

use std::io;
use std::time::Duration;

use super::Smtp;
use super::envelope::{Client, State};
use crate::net::conn::{Conn, with_timeout};
use crate::proto::smtp::DataReceiver;

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
    conn.reply("354 Start mail input; end with <CRLF>.<CRLF>")
        .await?;
    conn.flush().await?;
    let mut receiver =
        DataReceiver::new(usize::try_from(ctx.max_message_bytes).unwrap_or(usize::MAX));
    // A deadline for the whole of DATA, not just each read: a client
    // trickling a byte a minute is cut off all the same.
    let receive = async {
        loop {
            let (used, done) = receiver.feed(conn.buffered());
            conn.consume(used);
            if done {
                return Ok(());
            }
            if with_timeout(DATA_BLOCK_TIMEOUT, conn.fill()).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    timed_out_421(with_timeout(ctx.timeouts.data, receive).await, conn).await?;
    let message = (!receiver.too_big).then(|| receiver.into_message());
    finish(ctx, conn, client, message).await
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
            {
                if (tx.chunks.len() + take) as u64 > max {
                    tx.chunks_too_big = true;
                    tx.chunks = Vec::new();
                } else {
                    tx.chunks
                        .extend_from_slice(conn.buffered().get(..take).unwrap_or_default());
                }
            }
            conn.consume(take);
            left -= take as u64;
        }
        Ok(())
    };
    timed_out_421(with_timeout(ctx.timeouts.data, receive).await, conn).await?;
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
    let message = (!tx.chunks_too_big).then(|| std::mem::take(&mut tx.chunks));
    finish(ctx, conn, client, message).await
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

/// Ends a transaction: delivers the message (`None`: it was too big),
/// answers, and resets the state to greeted.
async fn finish(
    ctx: &Smtp,
    conn: &mut Conn,
    client: &mut Client,
    message: Option<Vec<u8>>,
) -> io::Result<()> {
    let answer = match (message, &client.state) {
        (Some(m), State::Mail(greeting, tx)) => {
            let envelope = super::deliver::Envelope {
                greeting,
                tx,
                account: client.account.as_ref(),
            };
            super::deliver::deliver(ctx, conn, &envelope, m).await
        }
        _ => too_big(ctx.max_message_bytes),
    };
    client.state.reset();
    conn.reply(&answer).await
}
