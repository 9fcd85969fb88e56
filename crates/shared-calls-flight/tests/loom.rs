//! Loom models of the flight's races; run with
//! `RUSTFLAGS="--cfg shared_calls_loom" CARGO_TARGET_DIR=target/loom cargo test -p shared-calls-flight --test loom --release`.
#![cfg(shared_calls_loom)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::thread;
use shared_calls_flight::{FlightError, Group, Source};

use support::Probe;

/// Explores every interleaving (the models are small enough), or those up
/// to `bound` preemptions.
fn model_bounded(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = bound;
    builder.check(f);
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(None, f);
}

/// One shard keeps the number of loom objects small.
fn group() -> Group<u8, u32> {
    Group::<u8, u32>::builder().shards(1).build()
}

/// A work that returns `Pending` (waking itself) `yields` times, then
/// `value`, or never when `yields` is `usize::MAX`.
struct Work {
    runs: Arc<Probe>,
    yields: usize,
    value: u32,
    polled: bool,
}

fn work(runs: &Arc<Probe>, yields: usize, value: u32) -> Work {
    Work {
        runs: runs.clone(),
        yields,
        value,
        polled: false,
    }
}

impl Future for Work {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if !self.polled {
            self.polled = true;
            self.runs.started.fetch_add(1, Ordering::SeqCst);
        }
        if self.yields == 0 {
            self.runs.finished.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(self.value);
        }
        if self.yields != usize::MAX {
            self.yields -= 1;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if self.polled {
            self.runs.dropped.store(true, Ordering::SeqCst);
        }
    }
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn completion_races_a_follower_that_joined() {
    model(|| {
        let group = group();
        let runs = Arc::new(Probe::default());
        let leader = group.call_ex(&0, work(&runs, 0, 1));
        let follower = group.call_ex(&0, work(&runs, 0, 2));
        let waiter = thread::spawn(move || block_on(follower));
        assert_eq!(block_on(leader), Ok((1, Source::Fresh)));
        assert_eq!(waiter.join().unwrap(), Ok((1, Source::Shared)));
        assert_eq!(runs.started(), 1);
        assert!(group.is_empty());
    });
}

#[test]
fn completion_races_a_follower_joining() {
    model(|| {
        let group = group();
        let runs = Arc::new(Probe::default());
        let leader = group.call_ex(&0, work(&runs, 0, 1));
        let (other, other_runs) = (group.clone(), runs.clone());
        let late = thread::spawn(move || block_on(other.call_ex(&0, work(&other_runs, 0, 2))));
        assert_eq!(block_on(leader), Ok((1, Source::Fresh)));
        match late.join().unwrap() {
            // Joined the flight in time.
            Ok((1, Source::Shared)) => assert_eq!(runs.started(), 1),
            // Arrived after it ended: a flight of its own.
            Ok((2, Source::Fresh)) => assert_eq!(runs.started(), 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(group.is_empty());
    });
}

#[test]
fn a_dropped_leader_hands_its_work_to_a_waiting_follower() {
    model(|| {
        let group = group();
        let runs = Arc::new(Probe::default());
        let mut leader = group.call_ex(&0, work(&runs, 1, 1));
        let follower = group.call_ex(&0, work(&runs, 0, 2));
        let waiter = thread::spawn(move || block_on(follower));
        assert!(poll_once(&mut leader).is_pending());
        drop(leader);
        assert_eq!(waiter.join().unwrap(), Ok((1, Source::Shared)));
        assert_eq!((runs.started(), runs.finished()), (1, 1));
        assert!(group.is_empty());
    });
}

#[test]
fn a_leader_dropped_unpolled_races_a_follower_joining() {
    model(|| {
        let group = group();
        let runs = Arc::new(Probe::default());
        let leader = group.call_ex(&0, work(&runs, 0, 1));
        let (other, other_runs) = (group.clone(), runs.clone());
        let late = thread::spawn(move || block_on(other.call_ex(&0, work(&other_runs, 0, 2))));
        drop(leader);
        match late.join().unwrap() {
            // Joined before the leader left: inherited its work.
            Ok((1, Source::Shared)) | Ok((2, Source::Fresh)) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!((runs.started(), runs.finished()), (1, 1));
        assert!(group.is_empty());
    });
}

#[test]
fn the_heir_leaving_passes_the_work_on() {
    model_bounded(Some(3), || {
        let group = group();
        let runs = Arc::new(Probe::default());
        let mut leader = group.call_ex(&0, work(&runs, 1, 1));
        let mut leaving = group.call_ex(&0, work(&runs, 0, 2));
        let staying = group.call_ex(&0, work(&runs, 0, 3));
        assert!(poll_once(&mut leader).is_pending());
        let gone = thread::spawn(move || {
            // Possibly the heir by now: it may even finish the work.
            if poll_once(&mut leaving).is_pending() {
                drop(leaving);
            }
        });
        let waiter = thread::spawn(move || block_on(staying));
        drop(leader);
        gone.join().unwrap();
        assert_eq!(waiter.join().unwrap(), Ok((1, Source::Shared)));
        assert_eq!((runs.started(), runs.finished()), (1, 1));
        assert!(group.is_empty());
    });
}

#[test]
fn leader_and_follower_dropped_together_cancel_the_work() {
    model(|| {
        let group = group();
        let runs = Arc::new(Probe::default());
        let mut leader = group.call_ex(&0, work(&runs, usize::MAX, 1));
        let mut follower = group.call_ex(&0, work(&runs, 0, 2));
        assert!(poll_once(&mut leader).is_pending());
        let other = thread::spawn(move || {
            assert!(poll_once(&mut follower).is_pending());
            drop(follower);
        });
        drop(leader);
        other.join().unwrap();
        assert_eq!(runs.started(), 1, "only the flight's work ran");
        assert!(runs.dropped(), "the abandoned work was dropped");
        assert_eq!(runs.finished(), 0);
        assert!(group.is_empty());
    });
}

#[test]
fn forget_races_completion() {
    model(|| {
        let group = group();
        let runs = Arc::new(Probe::default());
        let leader = group.call_ex(&0, work(&runs, 0, 1));
        let first = thread::spawn(move || block_on(leader));
        group.forget(&0);
        let second = group.call_ex(&0, work(&runs, 0, 2));
        assert_eq!(group.len(), 1, "the old flight never removes the new one");
        assert_eq!(first.join().unwrap(), Ok((1, Source::Fresh)));
        assert_eq!(group.len(), 1);
        assert_eq!(block_on(second), Ok((2, Source::Fresh)));
        assert_eq!(runs.started(), 2);
        assert!(group.is_empty());
    });
}

#[test]
fn a_panic_races_a_follower_joining() {
    quiet_panics();
    model(|| {
        let group = group();
        let leader = group.call_ex(&0, async { panic!("boom") });
        let other = group.clone();
        let late = thread::spawn(move || block_on(other.call_ex(&0, async { 2 })));
        let boom = Err(FlightError::Panicked {
            message: "boom".into(),
        });
        assert_eq!(block_on(leader), boom);
        let late = late.join().unwrap();
        assert!(late == boom || late == Ok((2, Source::Fresh)), "{late:?}");
        assert!(group.is_empty());
    });
}

/// Keeps the expected panics of the works out of the output.
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"boom") {
            default(info);
        }
    }));
}
