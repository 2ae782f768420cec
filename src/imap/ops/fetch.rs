//! FETCH and UID FETCH (RFC 3501 §6.4.5, RFC 3516 BINARY, RFC 7162
//! CHANGEDSINCE and VANISHED): the handler; `imap::fetch` builds the
//! response items.
//!
//! Imports the session's types, `view`, `imap::fetch`, `proto::imap` and
//! the `store` interface. Invariants: no EXPUNGE goes out during a FETCH by
//! sequence number; bodies stream a few messages at a time.

use std::io;

use crate::imap::fetch as items;
use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View, vanished_line};
use crate::proto::imap::{Fetch, FetchAtt};

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    fetch: Fetch,
) -> io::Result<Next> {
    let moment = if fetch.uid {
        Moment::Any
    } else {
        Moment::NoExpunge
    };
    let resolved = match view.resolve(&fetch.set, fetch.uid) {
        Ok(s) => s,
        Err(e) => return io.bad(Some(tag), &e).await,
    };
    if fetch.changed_since.is_some() || fetch.atts.contains(&FetchAtt::ModSeq) {
        let highest = user.enable_condstore(Some(view));
        io.conn.write_all(&highest).await?;
    }
    if fetch.vanished {
        if !user.qresync {
            return io.bad(Some(tag), "VANISHED needs QRESYNC enabled").await;
        }
        let since = fetch.changed_since.unwrap_or(0);
        match user.session.changes_since(&view.name, since).await {
            Ok(c) => {
                let open = View::resolve_open(&fetch.set);
                let gone: Vec<u32> = c
                    .vanished
                    .into_iter()
                    .filter(|u| open.contains(*u))
                    .collect();
                let mut buf = Vec::new();
                vanished_line(&mut buf, &gone, true);
                io.conn.write_all(&buf).await?;
            }
            Err(e) => return io.store_failed(tag, &e).await,
        }
    }
    let mut members = view.members(&resolved);
    if let Some((a, b)) = fetch.partial {
        // PARTIAL (RFC 9394 §3.3): a window of the set's messages.
        members = super::search::window(&members, a, b).to_vec();
    }
    let req = items::Request {
        atts: &fetch.atts,
        uid: fetch.uid,
        changed_since: fetch.changed_since,
        condstore: user.condstore,
    };
    let mut fetcher = items::Fetcher::new(view, members, &req);
    let mut result = Ok(());
    while let Some(batch) = fetcher.next(&user.session, view).await {
        match batch {
            Ok(bytes) => io.conn.write_all(&bytes).await?,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let unknown_cte = fetcher.unknown_cte();
    io.updates(user, Some(view), moment).await?;
    match result {
        Ok(()) if unknown_cte => {
            io.no(
                tag,
                "[UNKNOWN-CTE] a part's Content-Transfer-Encoding cannot be decoded",
            )
            .await
        }
        Ok(()) => io.ok(tag, "FETCH completed").await,
        Err(e) => io.store_failed(tag, &e).await,
    }
}
