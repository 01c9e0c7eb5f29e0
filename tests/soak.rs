//! A short soak (`tests/common/soak.rs`, the same run as `cargo bench --bench soak`): about
//! twenty seconds of random faults, server and local changes and `kill -9` restarts of the
//! daemon, then the store must equal the server item by item, every contact, task and note
//! the device kept must be on the server once and every one it deleted gone, no temporary
//! file left, and the longest-lived daemon must hold no more descriptors at the end than at
//! its start. So the soak command cannot break unnoticed. `EASYNC_SOAK_SEED=N` repeats a
//! run's random choices.

#![cfg(feature = "lab")]

mod common;

use common::soak::{self, SoakConfig};

#[test]
fn a_short_soak_ends_in_step_with_no_leak() {
    let seed = common::daemon::seed_from("EASYNC_SOAK_SEED");
    eprintln!("soak smoke seed {seed} (EASYNC_SOAK_SEED={seed} repeats it)");
    let report = soak::run(&SoakConfig::smoke(seed), env!("CARGO_BIN_EXE_easyncd"));
    report.print();
    assert!(
        report.kills >= 1,
        "the run must kill the daemon at least once"
    );
    assert!(report.fault_periods >= 1, "the run must inject faults");
    assert!(
        report.server_changes >= 1 && report.local_made >= 1,
        "the run must change both sides"
    );
    assert!(report.items_compared > 0, "the comparison must see items");
    assert!(
        report.fds.0 > 0,
        "the descriptors of a parked daemon must have been counted"
    );
    assert!(
        report.unexpected_exits.is_empty(),
        "the daemon died by itself: {:#?}",
        report.unexpected_exits
    );
    assert!(
        report.in_step_after.is_some() && report.mismatches.is_empty(),
        "seed {seed}: the store and the server disagree:\n{}\n{}",
        report.mismatches.join("\n"),
        report.log_excerpt
    );
    assert!(
        report.leftover_temp_files.is_empty(),
        "temporary files left: {:?}",
        report.leftover_temp_files
    );
    assert!(
        !report.fds_grew(),
        "descriptors grew from {} to {}",
        report.fds.0,
        report.fds.1
    );
}
