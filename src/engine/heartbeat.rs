//! The adaptive Ping heartbeat: how long to let the server hold a Ping.
//!
//! Longer is better for the battery and the server; too long and a NAT or proxy on the path
//! drops the idle connection, which the device only notices as a timeout. So the heartbeat
//! starts moderate (8 minutes), grows after Pings that expire cleanly, shrinks after network
//! timeouts and remembers the value that failed as a ceiling, and always stays within the
//! bounds the configuration and the server (Ping status 5) allow. The learned state is
//! persisted by the store so a restart does not relearn it.
//!
//! Pure logic, no clock: the engine reports what happened and asks for the next value.

use core::time::Duration;

/// The heartbeat every session starts from when nothing is learned (seconds).
pub const DEFAULT_START: u32 = 480;
/// What EAS allows at most (MS-ASCMD HeartbeatInterval: 1 to 3540 seconds).
pub const PROTOCOL_MAX: u32 = 3540;
/// Clean expiries in a row before the heartbeat grows.
const GROW_AFTER: u32 = 3;
/// Clean expiries in a row at the ceiling before the ceiling itself is tried again (the
/// network may have changed).
const RETRY_CEILING_AFTER: u32 = 20;
/// How much the heartbeat grows per step, and the smallest step.
const GROW_PERCENT: u32 = 25;
const MIN_STEP: u32 = 60;

/// What the configuration allows (`[push]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
    pub start: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            min: 60,
            max: PROTOCOL_MAX,
            start: DEFAULT_START,
        }
    }
}

/// The learned part, persisted between runs (kept in the state as it is).
pub use crate::store::state::HeartbeatMemory as Learned;

/// The adaptive heartbeat. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    bounds: Bounds,
    learned: Learned,
    clean_in_a_row: u32,
}

impl Heartbeat {
    /// A heartbeat within `bounds`, continuing from `learned` if the store had it.
    pub fn new(bounds: Bounds, learned: Option<Learned>) -> Heartbeat {
        let bounds = Bounds {
            min: bounds.min.clamp(1, PROTOCOL_MAX),
            max: bounds
                .max
                .clamp(bounds.min.clamp(1, PROTOCOL_MAX), PROTOCOL_MAX),
            start: bounds.start,
        };
        let mut hb = Heartbeat {
            bounds,
            learned: learned.unwrap_or(Learned {
                current: bounds.start,
                ceiling: None,
                server_min: None,
                server_max: None,
            }),
            clean_in_a_row: 0,
        };
        hb.learned.current = hb.clamp(hb.learned.current);
        hb
    }

    /// The heartbeat to send in the next Ping.
    pub fn current(&self) -> u32 {
        self.learned.current
    }

    pub fn as_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.current()))
    }

    /// What to persist.
    pub fn learned(&self) -> Learned {
        self.learned
    }

    /// The range allowed now: the configuration's, narrowed by the server's, and below the
    /// learned ceiling (never below the lower bound).
    fn range(&self) -> (u32, u32) {
        let lo = self.bounds.min.max(self.learned.server_min.unwrap_or(0));
        let mut hi = self
            .bounds
            .max
            .min(self.learned.server_max.unwrap_or(PROTOCOL_MAX));
        if let Some(c) = self.learned.ceiling {
            hi = hi.min(c.saturating_sub(MIN_STEP));
        }
        (lo, hi.max(lo))
    }

    fn clamp(&self, value: u32) -> u32 {
        let (lo, hi) = self.range();
        value.clamp(lo, hi)
    }

    /// The Ping ran its full heartbeat and expired without changes (status 1): the path
    /// held the connection that long. After a few in a row the heartbeat grows; at the top of
    /// its range, a long quiet run lifts a learned ceiling by a step (the network may have
    /// changed since the timeout that set it).
    pub fn expired_cleanly(&mut self) {
        self.clean_in_a_row += 1;
        if self.clean_in_a_row < GROW_AFTER {
            return;
        }
        let now = self.learned.current;
        let step = (now.saturating_mul(GROW_PERCENT) / 100).max(MIN_STEP);
        let grown = self.clamp(now.saturating_add(step));
        if grown > now {
            self.learned.current = grown;
            self.clean_in_a_row = 0;
        } else if self.clean_in_a_row >= RETRY_CEILING_AFTER {
            if let Some(c) = self.learned.ceiling {
                self.learned.ceiling = (c < PROTOCOL_MAX).then(|| c + MIN_STEP);
            }
            self.clean_in_a_row = 0;
        }
    }

    /// A Ping came back with changes (status 2): it says nothing about how long the path
    /// holds an idle connection, so nothing is learned.
    pub fn changes_found(&mut self) {}

    /// The Ping timed out on the network (no answer within heartbeat + margin): something
    /// on the path dropped the idle connection. The value becomes a ceiling and the
    /// heartbeat drops to three quarters of it.
    pub fn network_timeout(&mut self) {
        self.clean_in_a_row = 0;
        let failed = self.learned.current;
        self.learned.ceiling = Some(match self.learned.ceiling {
            Some(c) => c.min(failed),
            None => failed,
        });
        self.learned.current = self.clamp(failed.saturating_mul(3) / 4);
    }

    /// Ping status 5: the server refused the heartbeat and named its bound. A bound above
    /// what was sent is the server's minimum, one below is its maximum.
    pub fn server_bound(&mut self, bound: u32) {
        let bound = bound.clamp(1, PROTOCOL_MAX);
        if bound > self.learned.current {
            self.learned.server_min = Some(bound);
            if self.learned.server_max.is_some_and(|m| m < bound) {
                self.learned.server_max = None;
            }
            // A server minimum above the learned ceiling wins: the server will not go lower.
            if self.learned.ceiling.is_some_and(|c| c <= bound) {
                self.learned.ceiling = None;
            }
        } else {
            self.learned.server_max = Some(bound);
            if self.learned.server_min.is_some_and(|m| m > bound) {
                self.learned.server_min = None;
            }
        }
        self.learned.current = self.clamp(bound);
        self.clean_in_a_row = 0;
    }
}

/// The folders to watch when the server allows at most `max` in one Ping (status 6): the
/// Inbox first, then calendar, contacts and tasks folders, then the rest in the order given.
/// `priority` ranks a folder (lower first); the order among equal ranks is kept.
pub fn choose_ping_folders<T: Clone>(
    folders: &[T],
    max: usize,
    priority: impl Fn(&T) -> u8,
) -> Vec<T> {
    let mut ranked: Vec<(u8, usize, &T)> = folders
        .iter()
        .enumerate()
        .map(|(i, f)| (priority(f), i, f))
        .collect();
    ranked.sort_by_key(|(p, i, _)| (*p, *i));
    ranked
        .into_iter()
        .take(max)
        .map(|(_, _, f)| f.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb() -> Heartbeat {
        Heartbeat::new(Bounds::default(), None)
    }

    #[test]
    fn starts_at_eight_minutes_and_grows_after_clean_expiries() {
        let mut h = hb();
        assert_eq!(h.current(), 480);
        h.expired_cleanly();
        h.expired_cleanly();
        assert_eq!(h.current(), 480, "one or two expiries do not move it");
        h.expired_cleanly();
        assert_eq!(h.current(), 600);
        for _ in 0..200 {
            h.expired_cleanly();
        }
        assert_eq!(
            h.current(),
            PROTOCOL_MAX,
            "grows up to the protocol maximum"
        );
    }

    #[test]
    fn a_network_timeout_sets_a_ceiling_it_stays_below() {
        let mut h = hb();
        for _ in 0..6 {
            h.expired_cleanly();
        }
        assert_eq!(h.current(), 750);
        h.network_timeout();
        assert_eq!(h.current(), 562);
        assert_eq!(h.learned().ceiling, Some(750));
        for _ in 0..19 {
            h.expired_cleanly();
            assert!(h.current() < 750, "{}", h.current());
        }
        assert_eq!(h.current(), 690, "just below the ceiling");
    }

    #[test]
    fn the_ceiling_is_tried_again_after_a_long_quiet_run() {
        let mut h = hb();
        h.network_timeout(); // at 480
        assert_eq!(h.learned().ceiling, Some(480));
        for _ in 0..100 {
            h.expired_cleanly();
        }
        assert!(h.current() >= 480, "{}", h.current());
    }

    #[test]
    fn server_bounds_from_status_5_are_kept() {
        let mut h = Heartbeat::new(
            Bounds {
                min: 60,
                max: 3540,
                start: 30,
            },
            None,
        );
        assert_eq!(h.current(), 60, "the start is clamped to the configuration");
        h.server_bound(120); // above what was sent: the server's minimum
        assert_eq!(h.current(), 120);
        h.network_timeout();
        assert_eq!(h.current(), 120, "never below the server's minimum");
        let mut h = hb();
        h.server_bound(300); // below: the server's maximum
        assert_eq!(h.current(), 300);
        for _ in 0..50 {
            h.expired_cleanly();
        }
        assert_eq!(h.current(), 300);
    }

    #[test]
    fn learned_state_survives_a_restart_and_is_clamped() {
        let mut h = hb();
        h.server_bound(900);
        h.server_bound(120);
        let learned = h.learned();
        let again = Heartbeat::new(Bounds::default(), Some(learned));
        assert_eq!(again.current(), h.current());
        let narrow = Heartbeat::new(
            Bounds {
                min: 60,
                max: 200,
                start: 480,
            },
            Some(Learned {
                current: 3000,
                ceiling: None,
                server_min: None,
                server_max: None,
            }),
        );
        assert_eq!(narrow.current(), 200);
        let bytes = postcard::to_allocvec(&learned).unwrap();
        assert_eq!(postcard::from_bytes::<Learned>(&bytes).unwrap(), learned);
    }

    #[test]
    fn ping_folders_keep_the_most_important_when_the_server_caps_them() {
        let folders = ["notes", "inbox", "projects", "calendar", "contacts"];
        let rank = |f: &&str| match *f {
            "inbox" => 0,
            "calendar" | "contacts" => 1,
            _ => 2,
        };
        assert_eq!(
            choose_ping_folders(&folders, 3, rank),
            vec!["inbox", "calendar", "contacts"]
        );
        assert_eq!(choose_ping_folders(&folders, 10, rank).len(), 5);
    }
}
