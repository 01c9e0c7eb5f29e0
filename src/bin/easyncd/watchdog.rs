//! Whether `easyncd` may tell systemd it is alive (`WATCHDOG=1`). The daemon's loop pings
//! only while the engine thread shows signs of life: every engine event resets the clock,
//! and the event says how long the engine may then stay silent — a parked Ping up to the
//! longest heartbeat, a back-off its wait, a wipe its erase. An engine stuck past that (a
//! deadlock, a request that ignores its timeout) stops the pings, and systemd restarts the
//! daemon (`Restart=on-failure`).

use std::time::{Duration, Instant};

use easync::engine::reaction::PARKED_RETRY;
use easync::engine::runner::{Event, ROAMING_CHECK, Step};

/// Room beyond what an event announces: hooks, a slow response, a 503 back-off inside a
/// session, an OAuth sign-in waiting for its code (15 min) all fit.
pub const SLACK: Duration = Duration::from_secs(60 * 60);
/// The longest Ping EAS allows (59 min) with its margin.
const LONGEST_PING: Duration = Duration::from_secs(3540 + 30);
/// A full wipe erasing a large partition (zeros at a slow eMMC's pace) plus its mkfs.
const WIPE: Duration = Duration::from_secs(4 * 60 * 60);

/// The engine's last sign of life and how long it may be silent after it.
#[derive(Debug, Clone, Copy)]
pub struct EngineWatch {
    last: Instant,
    budget: Duration,
}

impl EngineWatch {
    /// At start: the first cycle has [`SLACK`].
    pub fn new(now: Instant) -> Self {
        EngineWatch {
            last: now,
            budget: SLACK,
        }
    }

    /// The engine reported `event` at `now`.
    pub fn saw(&mut self, event: &Event, now: Instant) {
        self.last = now;
        self.budget = match event {
            Event::Begin(Step::Push) => LONGEST_PING + SLACK,
            Event::Failed { wait: Some(w), .. } => w.saturating_add(SLACK),
            Event::Failed { wait: None, .. } => PARKED_RETRY + SLACK,
            Event::Roaming => ROAMING_CHECK + SLACK,
            Event::WipeRequested { .. } => WIPE + SLACK,
            // Stopping: the daemon exits on its own; nothing to watch.
            Event::Stopped => Duration::MAX,
            _ => SLACK,
        };
    }

    /// Whether the engine is within what it announced.
    pub fn alive(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) <= self.budget
    }

    /// How long the engine has been silent.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use easync::engine::reaction::Reaction;

    #[test]
    fn each_event_grants_its_own_silence() {
        let t0 = Instant::now();
        let mut w = EngineWatch::new(t0);
        assert!(w.alive(t0 + SLACK));
        assert!(
            !w.alive(t0 + SLACK + Duration::from_secs(1)),
            "a first cycle stuck for ever"
        );
        // A parked Ping may be silent for the longest heartbeat.
        w.saw(&Event::Begin(Step::Push), t0);
        assert!(w.alive(t0 + LONGEST_PING + SLACK));
        assert!(!w.alive(t0 + LONGEST_PING + SLACK + Duration::from_secs(1)));
        // A sync step is not: without progress for longer than the slack it is stuck.
        w.saw(&Event::Begin(Step::Cycle), t0);
        assert!(w.alive(t0 + Duration::from_secs(30 * 60)));
        assert!(!w.alive(t0 + Duration::from_secs(2 * 60 * 60)));
        // A back-off of 20 minutes.
        w.saw(
            &Event::Failed {
                message: String::new(),
                reaction: Reaction::Retry {
                    after: Duration::from_secs(1200),
                },
                wait: Some(Duration::from_secs(1200)),
            },
            t0,
        );
        assert!(w.alive(t0 + Duration::from_secs(1200) + SLACK));
        assert!(!w.alive(t0 + Duration::from_secs(1201) + SLACK));
        // Parked until told: hours.
        w.saw(
            &Event::Failed {
                message: String::new(),
                reaction: Reaction::Blocked {
                    message: String::new(),
                },
                wait: None,
            },
            t0,
        );
        assert!(w.alive(t0 + PARKED_RETRY));
        w.saw(&Event::Stopped, t0);
        assert!(w.alive(t0 + Duration::from_secs(365 * 24 * 3600)));
        assert_eq!(
            w.silent_for(t0 + Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }
}
