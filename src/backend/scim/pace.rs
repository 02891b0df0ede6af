//! Pacing: one limiter per application, shared by every worker thread of a cohort, so the
//! application's per-minute limits (e.g. Slack's: 180 POST /Users and 600 writes a minute) are
//! kept instead of discovered through 429s. Each limit is a GCRA (a token bucket kept as the
//! time its next request is due): a request reserves its moment under one lock against every
//! limit it counts against (all requests; writes; user creations) and sleeps until then. After
//! a lull a limit lets a quarter second's worth through at once (at least 2), so a request held
//! by one limit does not waste the others' slots; its interval is widened to match, so no
//! 60-second window ever holds more than the limit. A 429's `Retry-After` pauses every worker,
//! not only the one that got it.

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
    every: Option<Limit>,
    write: Option<Limit>,
    create: Option<Limit>,
    state: Mutex<Slots>,
}

/// One limit: requests due every `interval`, `burst` of them early after a lull.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Limit {
    interval: Duration,
    /// How far ahead of its due time a request may leave (`burst` intervals).
    tolerance: Duration,
}

impl Limit {
    fn per_minute(n: Option<u32>) -> Option<Limit> {
        let n = n.filter(|n| *n > 0)?;
        // A quarter second's worth early, at least one; none for the smallest limits.
        let burst = if n >= 4 { (n / 240).max(1) } else { 0 };
        // Any 60 s window holds at most 60/interval + 1 + burst requests: keep that ≤ n.
        let interval = Duration::from_secs(60) / (n - 1 - burst).max(1);
        Some(Limit {
            interval,
            tolerance: interval * burst,
        })
    }
}

/// The time the next request of each kind is due (GCRA's "theoretical arrival time").
struct Slots {
    any: Instant,
    write: Instant,
    create: Instant,
    /// Nothing leaves before this (a 429's `Retry-After`).
    paused: Instant,
}

impl Pace {
    pub(super) fn new(limits: Limits) -> Pace {
        let now = Instant::now();
        Pace {
            every: Limit::per_minute(limits.requests_per_minute),
            write: Limit::per_minute(limits.writes_per_minute),
            create: Limit::per_minute(limits.creates_per_minute),
            state: Mutex::new(Slots {
                any: now,
                write: now,
                create: now,
                paused: now,
            }),
        }
    }

    /// Reserves this request's moment and sleeps until it (and past any pause set meanwhile).
    pub(super) fn wait(&self, op: Op) {
        let at = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let slots = &mut *s;
            let writes = matches!(op, Op::Write | Op::Create);
            let mut counted: Vec<(&mut Instant, Limit)> = Vec::with_capacity(3);
            if let Some(l) = self.every {
                counted.push((&mut slots.any, l));
            }
            if let (true, Some(l)) = (writes, self.write) {
                counted.push((&mut slots.write, l));
            }
            if let (Op::Create, Some(l)) = (op, self.create) {
                counted.push((&mut slots.create, l));
            }
            let mut at = Instant::now().max(slots.paused);
            for (due, limit) in &counted {
                at = at.max(due.checked_sub(limit.tolerance).unwrap_or(**due));
            }
            for (due, limit) in counted {
                *due = (*due).max(at) + limit.interval;
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

    /// Eight threads share one limit of 600 writes a minute (one each 100.5 ms, 3 at once
    /// after a lull): 16 writes take at least 1.3 s, however many threads ask.
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
        assert!(took >= Duration::from_millis(1300), "{took:?}");
        assert!(took < Duration::from_millis(2500), "{took:?}");
    }

    /// No 60-second window holds more than the limit, burst included.
    #[test]
    fn a_minute_never_holds_more_than_the_limit() {
        for n in [1, 2, 3, 4, 180, 600, 1800, 6000] {
            let l = Limit::per_minute(Some(n)).unwrap();
            let burst = (l.tolerance.as_nanos() / l.interval.as_nanos()) as u32;
            let in_a_minute = (Duration::from_secs(60).as_nanos() / l.interval.as_nanos()) as u32;
            assert!(
                in_a_minute + 1 + burst <= n.max(2),
                "{n}: {l:?} lets {} through",
                in_a_minute + 1 + burst
            );
        }
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
