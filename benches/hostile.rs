//! Hostile-server benchmark: the release `easyncd` against each of the lab's hostile faults
//! (the cases of `tests/hostile.rs`, run by `tests/common/hostile.rs`), one at a time so the
//! CPU figures do not compete. Run with `cargo bench --bench hostile [CASE...]`; it prints
//! one row per fault with the daemon's peak RSS (target under 16 MiB), its CPU share while
//! the fault lasted (target under 5 %), the requests it sent meanwhile, and how long it took
//! to be back in step once the fault stopped. The targets are informational: the bench exits
//! 0 either way and panics only when a run does not work at all.

#[path = "../tests/common/daemon.rs"]
mod daemon;
#[path = "../tests/common/hostile.rs"]
mod hostile;

const PEAK_TARGET_KIB: u64 = 16 * 1024;
const CPU_TARGET_PERCENT: f64 = 5.0;

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "over" }
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "{:<20} {:>10} {:>5} {:>8} {:>5} {:>9} {:>9} {:>12} {:>8} {:>11}",
        "fault",
        "peak KiB",
        "",
        "CPU %",
        "",
        "requests",
        "failures",
        "recovered s",
        "fds",
        "differences"
    );
    for case in hostile::all_cases() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == case.name) {
            continue;
        }
        let o = hostile::run(&case, env!("CARGO_BIN_EXE_easyncd"));
        println!(
            "{:<20} {:>10} {:>5} {:>8.1} {:>5} {:>9} {:>9} {:>12} {:>8} {:>11}",
            o.name,
            o.peak_rss_kib,
            verdict(o.peak_rss_kib < PEAK_TARGET_KIB),
            o.cpu_percent,
            verdict(o.cpu_percent < CPU_TARGET_PERCENT),
            o.requests,
            o.failures,
            o.recovered_in
                .map_or("never".into(), |d| format!("{:.1}", d.as_secs_f64())),
            format!("{}->{}", o.fds.0, o.fds.1),
            o.differences.len()
        );
        assert!(o.alive, "{}: easyncd died\n{}", o.name, o.log);
    }
}
