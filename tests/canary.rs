//! No byte of the data directory or the temp directory holds message
//! content in clear: after appends, searches, a VACUUM, and after a kill -9
//! in the middle of writing.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::process::Stdio;

use common::*;
use sealmail::store::{Criteria, FetchWhat, UidSet};

const CANARY: &str = "Canary7e3fQ";

fn assert_clean(env: &Env, tmp: &std::path::Path) {
    for needle in [CANARY.as_bytes(), CANARY.to_lowercase().as_bytes()] {
        let hits = files_containing(env.data(), needle);
        assert!(hits.is_empty(), "canary in clear in {hits:?}");
        let hits = files_containing(tmp, needle);
        assert!(hits.is_empty(), "canary in clear in temp files {hits:?}");
    }
}

#[test]
fn canary_never_reaches_disk_in_clear() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let attachment = format!("{CANARY} in the attachment ").repeat(300);
    for i in 0..20 {
        let m = with_attachment(
            &format!("{CANARY} subject {i}"),
            &format!("body with {CANARY} number {i}"),
            attachment.as_bytes(),
        );
        block(s.append(append_req("INBOX", m))).unwrap();
    }
    let found = block(s.search("INBOX", Criteria::Text(CANARY.into()))).unwrap();
    assert_eq!(found.uids.len(), 20);
    let found = block(s.search("INBOX", Criteria::Body("in the attachment".into()))).unwrap();
    assert_eq!(
        found.uids.len(),
        0,
        "binary attachments are not indexed as text"
    );
    block(s.copy("INBOX", UidSet::range(1, 5), "Archive")).unwrap();
    let fetched = block(s.fetch("INBOX", UidSet::range(1, 1), FetchWhat::default())).unwrap();
    assert_eq!(fetched.len(), 1);
    block(s.vacuum()).unwrap();
    assert_clean(&env, tmp.path());
    drop(s);

    // A writer killed mid-import leaves nothing in clear either.
    let mbox_path = tmp.path().join("big.mbox");
    let mut mbox = Vec::new();
    for i in 0..3000 {
        mbox.extend_from_slice(
            format!(
                "From x@y Mon Jan  1 00:00:00 2024\nSubject: {CANARY} {i}\n\n{}\n\n",
                format!("{CANARY} body ").repeat(40)
            )
            .as_bytes(),
        );
    }
    std::fs::write(&mbox_path, &mbox).unwrap();
    let child_tmp = tempfile::tempdir().unwrap();
    let mut child = env
        .bin()
        .args(["import", &addr])
        .arg(&mbox_path)
        .env("SEALMAIL_PASSWORD", "pw")
        .env("TMPDIR", child_tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill as soon as the first batch is committed: more are being written.
    kill_after(&mut child, "imported ");
    std::fs::remove_file(&mbox_path).unwrap();
    assert_clean(&env, child_tmp.path());
    assert_clean(&env, tmp.path());
    // And the mailbox still opens with what was committed.
    let s = unlock(&store, &addr, "pw");
    let st = block(s.status("INBOX")).unwrap();
    assert!(st.messages >= 20 + 200, "the first batch was committed");
    assert!(st.messages < 20 + 3000, "the import was cut short");
}
