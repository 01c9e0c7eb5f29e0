//! Soak benchmark: the release `easyncd` against the in-process lab for a set time with
//! random faults, random server and local changes and `kill -9` restarts, in compressed time;
//! at the end the store is compared with the server item by item (`tests/common/soak.rs`
//! runs it). `cargo bench --bench soak -- --minutes N --seed S` (defaults: 10 minutes, a
//! seed from the clock; `--seed` repeats a run's random choices). Prints the soak report;
//! exits 1 when the store and the server disagree, the daemon leaked descriptors or died,
//! or the store never came back in step. The daemon logs are kept under the target
//! directory (the report says where).

#[path = "../tests/common/daemon.rs"]
mod daemon;
#[path = "../tests/common/hostile.rs"]
mod hostile;
#[path = "../tests/common/soak.rs"]
mod soak;

use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: cargo bench --bench soak -- [--minutes N] [--seed S]";

fn main() -> ExitCode {
    let mut minutes: f64 = 10.0;
    let mut seed: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--minutes" => {
                minutes = value("--minutes")
                    .parse()
                    .unwrap_or_else(|_| panic!("--minutes takes a number\n{USAGE}"));
            }
            "--seed" => {
                seed = Some(
                    value("--seed")
                        .parse()
                        .unwrap_or_else(|_| panic!("--seed takes a number\n{USAGE}")),
                );
            }
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("soak: {minutes} minutes, seed {seed} (--seed {seed} repeats the random choices)");
    let mut config = soak::SoakConfig::new(Duration::from_secs_f64(minutes * 60.0), seed);
    config.keep_logs =
        Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("soak-logs-{seed}")));
    let report = soak::run(&config, env!("CARGO_BIN_EXE_easyncd"));
    report.print();
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
