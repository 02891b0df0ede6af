//! Pacing: one limiter per application, shared by every worker thread of a cohort, so the
//! application's per-minute limits (e.g. Slack's: 180 POST /Users and 600 writes a minute) are
//! kept instead of discovered through 429s. Each request reserves the next free slot of every
//! limit it counts against (all requests; writes; user creations) under one lock, then sleeps
//! until its slot: requests leave evenly spaced, in the order they asked. A 429's
//! `Retry-After` pauses every worker, not only the one that got it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-minute limits of one application (`None`: not limited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Every request.
    pub requests_per_minute: Option<u32>,
    /// POST, PUT, PATCH and DELETE.
    pub writes_per_minute: Option<u32>,
    /// POST /Users.
    pub creates_per_minute: Option<u32>,
}

/// What a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Read,
    Write,
    /// POST /Users: a write, and a creation.
    Create,
}

pub(super) struct Pace {
    every: Option<Duration>,
    write: Option<Duration>,
    create: Option<Duration>,
    state: Mutex<Slots>,
}

/// The earliest moment the next request of each kind may leave.
struct Slots {
    any: Instant,
    write: Instant,
    create: Instant,
    /// Nothing leaves before this (a 429's `Retry-After`).
    paused: Instant,
}

fn interval(per_minute: Option<u32>) -> Option<Duration> {
    per_minute
        .filter(|n| *n > 0)
        .map(|n| Duration::from_secs(60) / n)
}

impl Pace {
    pub(super) fn new(limits: Limits) -> Pace {
        let now = Instant::now();
        Pace {
            every: interval(limits.requests_per_minute),
            write: interval(limits.writes_per_minute),
            create: interval(limits.creates_per_minute),
            state: Mutex::new(Slots {
                any: now,
                write: now,
                create: now,
                paused: now,
            }),
        }
    }

    /// Reserves this request's slot and sleeps until it (and past any pause set meanwhile).
    pub(super) fn wait(&self, op: Op) {
        let at = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut at = Instant::now().max(s.paused);
            if self.every.is_some() {
                at = at.max(s.any);
            }
            let writes = matches!(op, Op::Write | Op::Create);
            if writes && self.write.is_some() {
                at = at.max(s.write);
            }
            if op == Op::Create && self.create.is_some() {
                at = at.max(s.create);
            }
            if let Some(d) = self.every {
                s.any = at + d;
            }
            if let (true, Some(d)) = (writes, self.write) {
                s.write = at + d;
            }
            if let (Op::Create, Some(d)) = (op, self.create) {
                s.create = at + d;
            }
            at
        };
        sleep_until(at);
        // A 429 seen by another worker while this one slept: wait with everyone.
        let paused = self.state.lock().unwrap_or_else(|e| e.into_inner()).paused;
        sleep_until(paused);
    }

    /// Nothing leaves for `wait` (the application said so with a 429).
    pub(super) fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.paused = s.paused.max(until);
    }
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight threads share one limit of 600 writes a minute (one each 100 ms): 16 writes take
    /// at least 1.5 s, however many threads ask.
    #[test]
    fn one_limit_is_shared_by_every_thread() {
        let pace = std::sync::Arc::new(Pace::new(Limits {
            writes_per_minute: Some(600),
            ..Limits::default()
        }));
        let start = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let pace = pace.clone();
                std::thread::spawn(move || {
                    pace.wait(Op::Write);
                    pace.wait(Op::Write);
                    pace.wait(Op::Read);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1500), "{took:?}");
        assert!(took < Duration::from_millis(2500), "{took:?}");
    }

    #[test]
    fn a_pause_holds_every_request() {
        let pace = Pace::new(Limits::default());
        pace.pause(Duration::from_millis(300));
        let start = Instant::now();
        pace.wait(Op::Read);
        assert!(start.elapsed() >= Duration::from_millis(300));
    }
}
