//! A circuit breaker: after some consecutive failures, refuse at once for a
//! cool-down, then let one probe through; its success closes the circuit.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    started: Instant,
    failures: AtomicU32,
    /// Milliseconds since `started` until which the circuit is open; zero
    /// when closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    pub(crate) trips: AtomicU64,
}

/// Whether an operation may go ahead, and as what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    Closed,
    /// The one operation that tries the tier after the cool-down.
    Probe,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            started: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            trips: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// A permit, or `None` while the circuit is open (or another probe runs).
    pub(crate) fn permit(&self) -> Option<Permit> {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return Some(Permit::Closed);
        }
        if self.now() < open_until {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then_some(Permit::Probe)
    }

    pub(crate) fn succeeded(&self, permit: Permit) {
        self.failures.store(0, Ordering::Relaxed);
        if permit == Permit::Probe {
            self.open_until.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
    }

    pub(crate) fn failed(&self, permit: Permit) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if permit == Permit::Probe || failures == self.threshold {
            let until = self.now() + u64::try_from(self.cool_down.as_millis()).unwrap_or(u64::MAX);
            if self.open_until.swap(until, Ordering::AcqRel) == 0 {
                self.trips.fetch_add(1, Ordering::Relaxed);
            }
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Whether operations are refused now.
    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_then_one_probe_closes_it() {
        let breaker = Breaker::new(3, Duration::from_millis(100));
        for _ in 0..3 {
            let permit = breaker.permit().unwrap();
            breaker.failed(permit);
        }
        assert!(breaker.is_open());
        assert_eq!(breaker.permit(), None, "open: refused at once");
        tokio::time::advance(Duration::from_millis(101)).await;
        let probe = breaker.permit().unwrap();
        assert_eq!(probe, Permit::Probe);
        assert_eq!(breaker.permit(), None, "one probe at a time");
        breaker.succeeded(probe);
        assert!(!breaker.is_open());
        assert_eq!(breaker.permit(), Some(Permit::Closed));
        assert_eq!(breaker.trips.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_for_another_cool_down() {
        let breaker = Breaker::new(1, Duration::from_millis(100));
        breaker.failed(breaker.permit().unwrap());
        tokio::time::advance(Duration::from_millis(101)).await;
        breaker.failed(breaker.permit().unwrap());
        assert_eq!(breaker.permit(), None);
        tokio::time::advance(Duration::from_millis(101)).await;
        assert_eq!(breaker.permit(), Some(Permit::Probe));
    }
}
