//! Sieve at delivery: MX intake to owners with a 20-rule script active
//! against owners with none, in the same server, alternating.

use std::path::Path;
use std::time::Instant;

use crate::common::*;
use crate::mx::mx_sender;

/// Twenty rules of the kinds owners write: header and address tests that
/// file into folders, one body test; none matches the bench's messages,
/// so every rule is evaluated and the implicit keep files them.
fn twenty_rules() -> String {
    let mut s = String::from(
        "require [\"fileinto\", \"body\", \"imap4flags\", \"variables\", \"envelope\"];\n",
    );
    for i in 0..17 {
        s.push_str(&format!(
            "if header :contains \"subject\" \"project-{i}\" {{ fileinto \"Projects/{i}\"; stop; }}\n"
        ));
    }
    s.push_str(
        "if address :domain :is \"from\" \"lists.example.com\" { fileinto \"Lists\"; stop; }\n",
    );
    s.push_str("if envelope :localpart :is \"from\" \"billing\" { addflag \"$Bills\"; }\n");
    s.push_str("if body :text :contains \"unsubscribe-now\" { fileinto \"Junk\"; stop; }\n");
    s
}

pub(crate) fn mx_sieve_bench(tmp: &Path) {
    let config = ten_users(&tmp.join("sieve"));
    {
        let mut control = sealmail::app::open_control(&config).expect("control");
        let script = twenty_rules();
        for id in 5..10 {
            let a = format!("user{id}@example.org");
            control.sieve_put(&a, "rules", &script).expect("put");
            control.sieve_activate(&a, Some("rules")).expect("activate");
        }
    }
    let per = 100;
    let rounds = 3;
    let ratios = with_server(config, |addr, _, _| {
        // Ten senders, two per owner: owners 0-4 (no script) or 5-9.
        let load = |first: usize| {
            let t = Instant::now();
            std::thread::scope(|scope| {
                for id in 0..10 {
                    let rcpt = format!("user{}@example.org", first + id % 5);
                    scope.spawn(move || mx_sender(addr, &rcpt, id, per));
                }
            });
            (10 * per) as f64 / t.elapsed().as_secs_f64()
        };
        let mut out = Vec::new();
        for _ in 0..rounds {
            let none = load(0);
            let with = load(5);
            println!("  round: no script {none:.0} msgs/s, 20-rule script {with:.0} msgs/s");
            out.push((with / none, none, with));
        }
        out
    });
    let mut sorted: Vec<f64> = ratios.iter().map(|r| r.0).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted[sorted.len() / 2];
    println!(
        "\nSieve: MX intake, 10 senders x {per} messages of 4 KiB (sealed), owners with a 20-rule script vs none, \
         {rounds} alternating rounds: median ratio {median:.2}; goal >= 0.9: {}",
        ok(median >= 0.9)
    );
}
