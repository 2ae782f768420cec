//! IDLE (RFC 2177): other sessions' changes are written the moment they
//! commit, until DONE, a timeout or shutdown.
//!
//! Imports the session's types and `net::conn`. Invariants: the client's
//! line and the change stream are waited on at once; a stream dropped for
//! lagging resynchronises instead of ending the IDLE.

use std::io;
use std::time::Duration;

use crate::imap::session::{IDLE_TIMEOUT, Io, Next, User};
use crate::imap::view::{Moment, View};
use crate::net::conn::{Line, with_timeout};
use crate::store::Change;

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    mut view: Option<&mut View>,
    tag: &str,
    stop: &async_channel::Receiver<()>,
) -> io::Result<Next> {
    io.updates(user, view.as_deref_mut(), Moment::Any).await?;
    io.conn.write_all(b"+ idling\r\n").await?;
    io.conn.flush().await?;
    enum Woke {
        Event(Option<Change>),
        Line(io::Result<Line>),
        Stop,
    }
    loop {
        let events = user.events.clone();
        let conn = &mut io.conn;
        let read = async { Woke::Line(with_timeout(IDLE_TIMEOUT, conn.read_line(64)).await) };
        let event = async { Woke::Event(events.recv().await.ok()) };
        let stopped = async {
            let _ = stop.recv().await;
            Woke::Stop
        };
        let woke = futures_lite::future::or(futures_lite::future::or(event, read), stopped).await;
        match woke {
            Woke::Event(Some(c)) => {
                if let Some(v) = view.as_deref_mut() {
                    v.push_events([c]);
                }
                io.updates(user, view.as_deref_mut(), Moment::Any).await?;
                io.conn.flush().await?;
            }
            Woke::Event(None) => {
                // The stream was dropped for lagging: resynchronise.
                io.updates(user, view.as_deref_mut(), Moment::Any).await?;
                io.conn.flush().await?;
                if user.events.is_closed() {
                    smol::Timer::after(Duration::from_millis(100)).await;
                }
            }
            Woke::Line(Ok(Line::Complete(l))) if l.eq_ignore_ascii_case(b"DONE") => {
                io.updates(user, view.as_deref_mut(), Moment::Any).await?;
                return io.ok(tag, "IDLE terminated").await;
            }
            Woke::Line(Ok(Line::Complete(_) | Line::TooLong)) => {
                return io.bad(Some(tag), "expected DONE").await;
            }
            Woke::Line(Ok(Line::Eof)) => return Ok(Next::Close),
            Woke::Line(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                io.conn.reply("* BYE autologout; idle for too long").await?;
                return Ok(Next::Close);
            }
            Woke::Line(Err(e)) => return Err(e),
            Woke::Stop => {
                io.conn
                    .reply("* BYE [UNAVAILABLE] server shutting down")
                    .await?;
                return Ok(Next::Close);
            }
        }
    }
}
