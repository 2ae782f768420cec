//! Every fuzz target's seeds and every input that ever crashed one
//! (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`) run through the
//! same functions AFL drives, on every test run, without AFL.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

fn replay(folder: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(folder);
    let mut ran = 0;
    for (name, target) in targets::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&input));
            assert!(outcome.is_ok(), "{name} panicked on {}", path.display());
            ran += 1;
        }
    }
    ran
}

#[test]
fn seeds_pass_every_target() {
    let ran = replay("seeds");
    assert!(ran >= targets::TARGETS.len(), "only {ran} seeds");
}

#[test]
fn past_findings_stay_fixed() {
    assert!(replay("regressions") >= 1);
}

#[test]
fn every_target_has_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, _) in targets::TARGETS {
        let n = std::fs::read_dir(root.join(name)).map_or(0, |d| d.count());
        assert!(n > 0, "fuzz/seeds/{name} is empty");
    }
}
