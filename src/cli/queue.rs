//! `sealmail queue list|show|retry|delete`: the operator's view of the
//! outbound queue. Works while the server runs (SQLite's locking keeps the
//! two writers apart; the server sees a retry within seconds).
//!
//! Imports `app`, `config`, `queue`. Invariants: never prints a message
//! body; delete removes a message without a bounce, and says so.

use std::sync::Arc;

use anyhow::Result;
use clap::Subcommand;

use crate::app;
use crate::config::Config;
use crate::queue::{MessageState, Queue, SystemClock, show_time};

#[derive(Subcommand)]
pub enum QueueCmd {
    /// List messages still being delivered (with --all, finished ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Show a message's recipients and what became of each.
    Show { id: String },
    /// Try a message's waiting recipients again now.
    Retry { id: String },
    /// Remove a message from the queue; its sender gets no bounce.
    Delete { id: String },
}

pub fn run(config: &Config, cmd: QueueCmd) -> Result<()> {
    let key = app::server_key(&config.data_dir)?;
    let queue = Queue::open(
        &config.data_dir,
        &key,
        Arc::new(SystemClock),
        config.queue.clone(),
    )?;
    match cmd {
        QueueCmd::List { all } => {
            let list = queue.list(all, 10_000)?;
            for m in &list {
                let waiting = m.recipients.iter().filter(|r| r.state == "queued").count();
                outln!(
                    "{}\t{}\t{} bytes\tfrom {}\t{} recipients, {waiting} waiting",
                    m.id,
                    show_time(m.created),
                    m.size,
                    m.sender,
                    m.recipients.len()
                );
            }
            outln!("{} messages", list.len());
        }
        QueueCmd::Show { id } => out!("{}", describe(&queue.show(&id)?)),
        QueueCmd::Retry { id } => {
            let n = queue.retry(&id)?;
            outln!("{id}: {n} recipients will be tried again now");
        }
        QueueCmd::Delete { id } => {
            queue.delete(&id)?;
            outln!("{id}: deleted (no bounce is sent)");
        }
    }
    Ok(())
}

fn describe(m: &MessageState) -> String {
    let mut out = format!(
        "id: {}\nsent by: {}\nenvelope sender: {}\nsize: {} bytes\nqueued: {}\nbody: {}\n",
        m.id,
        m.alias,
        m.sender,
        m.size,
        show_time(m.created),
        if m.body_kept { "kept" } else { "removed" }
    );
    for r in &m.recipients {
        out.push_str(&format!("recipient: {} ({:?})\n", r.address, r.kind));
        out.push_str(&format!("  state: {}, attempts: {}\n", r.state, r.attempts));
        if let (Some(t), "queued") = (r.next_attempt, r.state.as_str()) {
            out.push_str(&format!("  next attempt: {}\n", show_time(t)));
        }
        if let Some(c) = r.category {
            out.push_str(&format!("  category: {}\n", c.as_str()));
        }
        if let Some(last) = &r.last_result {
            out.push_str(&format!("  last result: {last}\n"));
        }
        if r.bounced {
            out.push_str("  bounce sent to the sender\n");
        }
    }
    out
}
