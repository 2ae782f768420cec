//! COPY, MOVE and their UID forms (RFC 3501 §6.4.7, RFC 6851 MOVE, RFC
//! 4315 COPYUID).
//!
//! Imports the session's types, `view`, `proto::imap` and the `store`
//! interface. Invariants: a missing destination answers `NO [TRYCREATE]`;
//! MOVE tells the client of the expunges before its tagged OK.

use std::io;

use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View};
use crate::proto::imap::CopyTo;
use crate::store::{StoreError, UidSet};

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    copy: CopyTo,
    is_move: bool,
) -> io::Result<Next> {
    let verb = if is_move { "MOVE" } else { "COPY" };
    let dest = match user.decode_name(&copy.mailbox) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    if is_move && view.read_only {
        return io.no(tag, "[READ-ONLY] mailbox is read-only").await;
    }
    let resolved = match view.resolve(&copy.set, copy.uid) {
        Ok(s) => s,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let members = UidSet::from_uids(&view.members(&resolved));
    let r = if members.0.is_empty() {
        Ok(Default::default())
    } else if is_move {
        user.session.move_messages(&view.name, members, &dest).await
    } else {
        user.session.copy(&view.name, members, &dest).await
    };
    let result = match r {
        Ok(r) => r,
        Err(StoreError::NoSuchFolder(_)) => return io.no(tag, "[TRYCREATE] no such mailbox").await,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let code = if result.source.is_empty() {
        String::new()
    } else {
        format!(
            "[COPYUID {} {} {}] ",
            result.uidvalidity,
            uid_set_list(&result.source),
            uid_set_list(&result.dest)
        )
    };
    if !is_move {
        io.updates(user, Some(view), Moment::Any).await?;
        return io.ok(tag, &format!("{code}{verb} completed")).await;
    }
    let mut buf = format!("* OK {code}moved\r\n").into_bytes();
    view.expunged(&result.source, &mut user.out(&mut buf));
    io.conn.write_all(&buf).await?;
    io.updates(user, Some(view), Moment::Any).await?;
    io.ok(tag, &format!("{verb} completed")).await
}

/// `1,3:5` of UIDs in the order given (COPYUID pairs them up by position).
fn uid_set_list(uids: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    for &u in uids {
        run = match run {
            Some((first, last)) if u == last.wrapping_add(1) => Some((first, u)),
            Some(done) => {
                out.push(range_text(done));
                Some((u, u))
            }
            None => Some((u, u)),
        };
    }
    out.extend(run.map(range_text));
    out.join(",")
}

fn range_text((first, last): (u32, u32)) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}:{last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyuid_sets_keep_order() {
        assert_eq!(uid_set_list(&[1, 2, 3, 7, 5, 6]), "1:3,7,5:6");
        assert_eq!(uid_set_list(&[]), "");
        assert_eq!(uid_set_list(&[9]), "9");
    }
}
