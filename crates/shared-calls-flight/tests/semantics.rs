//! Deterministic tests of the group's semantics: every wait is bounded, every
//! test counts executions and checks each caller's outcome.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
#[cfg(feature = "tokio")]
use shared_calls_flight::{Call, FlightError, Group, GroupBuilder, Source};
use tokio::sync::{Barrier, Notify};

use support::Probe;

/// The longest any test waits for anything (virtual time in paused tests).
const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test instead of hanging.
async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("a wait that should end did not")
}

/// Sets the probe's `dropped` flag when the work future is dropped.
struct DropGuard(Arc<Probe>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

/// A gate that work waits on; opening it before the work waits is fine.
#[derive(Default)]
struct Gate(Notify);

impl Gate {
    fn open(&self) {
        self.0.notify_one();
    }
}

/// Work that records itself in `probe`, signals `started` once it runs,
/// waits for `gate`, then returns `value`.
fn gated<T: Send + 'static>(
    probe: &Arc<Probe>,
    gate: &Arc<Gate>,
    value: T,
) -> impl Future<Output = T> + Send + 'static {
    let (probe, gate) = (probe.clone(), gate.clone());
    async move {
        let _guard = DropGuard(probe.clone());
        probe.started.fetch_add(1, Ordering::SeqCst);
        gate.0.notified().await;
        probe.finished.fetch_add(1, Ordering::SeqCst);
        value
    }
}

/// Work that must never run: it records itself if it does.
fn never<T: Send + 'static>(
    probe: &Arc<Probe>,
    value: T,
) -> impl Future<Output = T> + Send + 'static {
    let probe = probe.clone();
    async move {
        probe.started.fetch_add(1, Ordering::SeqCst);
        value
    }
}

/// Lets the current-thread runtime run every task that is ready.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Waits until `probe` says the work started.
async fn until_started(probe: &Probe) {
    bounded(async {
        while probe.started() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    assert_send::<Group<String, Vec<u8>>>();
    assert_sync::<Group<String, Vec<u8>>>();
    assert_send::<Call<String, Vec<u8>>>();
    assert_sync::<Call<String, Vec<u8>>>();
    assert_send::<FlightError>();
    assert_sync::<FlightError>();
    assert_send::<GroupBuilder<String, Vec<u8>>>();
    assert_sync::<GroupBuilder<String, Vec<u8>>>();
    assert_send::<Source>();
    assert_sync::<Source>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_execution() {
    const CALLERS: usize = 100;
    let group: Group<String, String> = Group::new();
    let barrier = Arc::new(Barrier::new(CALLERS));
    let joined = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Gate::default());
    let executions = Arc::new(AtomicUsize::new(0));

    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (group, barrier, joined, gate, executions) = (
                group.clone(),
                barrier.clone(),
                joined.clone(),
                gate.clone(),
                executions.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let work_gate = gate.clone();
                let call = group.call_ex("hot", async move {
                    executions.fetch_add(1, Ordering::SeqCst);
                    work_gate.0.notified().await;
                    format!("value of caller {i}")
                });
                // A call joins its flight when it is created: once every
                // caller has, the work may finish.
                if joined.fetch_add(1, Ordering::SeqCst) + 1 == CALLERS {
                    gate.open();
                }
                call.await
            })
        })
        .collect();

    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(bounded(task).await.unwrap().unwrap());
    }
    assert_eq!(executions.load(Ordering::SeqCst), 1);
    let fresh: Vec<_> = outputs
        .iter()
        .filter(|(_, s)| *s == Source::Fresh)
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one caller ran the work");
    assert_eq!(
        outputs.iter().filter(|(_, s)| *s == Source::Shared).count(),
        CALLERS - 1
    );
    let value = &fresh[0].0;
    assert!(
        outputs.iter().all(|(v, _)| v == value),
        "every caller got the same value"
    );
    assert!(group.is_empty());
    assert_eq!(group.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn aborting_the_leader_hands_the_work_to_followers() {
    let group: Group<&'static str, &'static str> = Group::new();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, "original")));
    until_started(&probe).await;
    let followers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(group.call_ex(&"k", never(&unused, "restarted"))))
        .collect();
    settle().await;

    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());
    assert!(!probe.dropped(), "the work survives its leader");
    assert_eq!(group.len(), 1);

    gate.open();
    for follower in followers {
        assert_eq!(
            bounded(follower).await.unwrap().unwrap(),
            ("original", Source::Shared)
        );
    }
    assert_eq!(probe.started(), 1);
    assert_eq!(probe.finished(), 1);
    assert_eq!(unused.started(), 0, "no follower ran its own work");
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_leader_future_hands_the_work_over_as_it_is() {
    let group: Group<&'static str, u32> = Group::new();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    // Polled once (the work starts and waits on the gate), then dropped.
    let leader = group.call_ex(&"k", gated(&probe, &gate, 7));
    let follower = group.call_ex(&"k", never(&unused, 8));
    assert!(leader.now_or_never().is_none());
    assert_eq!(probe.started(), 1);
    assert!(!probe.dropped());

    gate.open();
    assert_eq!(bounded(follower).await.unwrap(), (7, Source::Shared));
    assert_eq!(probe.started(), 1, "the work was not restarted");
    assert_eq!(probe.finished(), 1);
    assert_eq!(unused.started(), 0);
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_work_passes_down_a_chain_of_dropped_callers() {
    let group: Group<&'static str, u32> = Group::new();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, 1)));
    until_started(&probe).await;
    let first = tokio::spawn(group.call_ex(&"k", never(&unused, 2)));
    let second = tokio::spawn(group.call_ex(&"k", never(&unused, 3)));
    settle().await;

    // The leader goes; the first follower picks the work up, then goes too.
    leader.abort();
    settle().await;
    first.abort();
    assert!(bounded(first).await.unwrap_err().is_cancelled());
    settle().await;
    assert!(!probe.dropped());

    gate.open();
    assert_eq!(bounded(second).await.unwrap().unwrap(), (1, Source::Shared));
    assert_eq!(probe.started(), 1);
    assert_eq!(probe.finished(), 1);
    assert_eq!(unused.started(), 0);
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dropping_every_caller_cancels_the_work() {
    let group: Group<&'static str, u32> = Group::new();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, 1)));
    let follower = tokio::spawn(group.call_ex(&"k", never(&unused, 2)));
    until_started(&probe).await;
    settle().await;

    follower.abort();
    assert!(bounded(follower).await.unwrap_err().is_cancelled());
    assert!(!probe.dropped(), "the leader still waits");
    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());

    assert!(probe.dropped(), "the abandoned work was dropped");
    assert_eq!(probe.finished(), 0, "and never completed");
    assert!(group.is_empty());

    // The key is free: the next caller runs its own work.
    let again = Arc::new(Probe::default());
    gate.open();
    let (value, source) = bounded(group.call_ex(&"k", gated(&again, &gate, 3)))
        .await
        .unwrap();
    assert_eq!((value, source), (3, Source::Fresh));
    assert_eq!(
        (again.started(), probe.started(), unused.started()),
        (1, 1, 0)
    );
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dropping_an_unpolled_leader_without_followers_drops_the_work() {
    let group: Group<&'static str, u32> = Group::new();
    let probe = Arc::new(Probe::default());
    let leader = group.call_ex(&"k", never(&probe, 1));
    assert_eq!(group.len(), 1);
    drop(leader);
    assert!(group.is_empty());
    assert_eq!(probe.started(), 0);
}

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn abandoned_work_finishes_on_its_own_when_asked_to() {
    let group = Group::<&'static str, u32>::builder()
        .finish_abandoned(true)
        .build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, 1)));
    until_started(&probe).await;
    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());
    settle().await;
    assert!(!probe.dropped(), "abandoned work keeps running");
    assert_eq!(group.len(), 1, "and keeps its key");

    // A caller arriving meanwhile joins the detached flight.
    let late = tokio::spawn(group.call_ex(&"k", never(&unused, 2)));
    settle().await;
    gate.open();
    assert_eq!(bounded(late).await.unwrap().unwrap(), (1, Source::Shared));
    assert_eq!(probe.started(), 1);
    assert_eq!(probe.finished(), 1, "the side effect happened");
    assert_eq!(unused.started(), 0);
    assert!(group.is_empty());
}

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn abandoned_work_finishes_without_anyone_waiting() {
    let group = Group::<&'static str, u32>::builder()
        .finish_abandoned(true)
        .build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));

    let leader = group.call_ex(&"k", gated(&probe, &gate, 1));
    assert!(leader.now_or_never().is_none());
    gate.open();
    bounded(async {
        while probe.finished() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    settle().await;
    assert_eq!(probe.started(), 1);
    assert!(group.is_empty());
}

#[cfg(feature = "tokio")]
#[test]
fn abandoned_work_is_cancelled_outside_a_runtime() {
    let group = Group::<&'static str, u32>::builder()
        .finish_abandoned(true)
        .build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let leader = group.call_ex(&"k", gated(&probe, &gate, 1));
    assert!(leader.now_or_never().is_none());
    assert!(probe.dropped(), "no runtime to finish it on: cancelled");
    assert_eq!(probe.finished(), 0);
    assert!(group.is_empty());
}

/// Work that waits for `gate`, then panics with `message`.
fn panicking(
    probe: &Arc<Probe>,
    gate: &Arc<Gate>,
    message: &'static str,
) -> impl Future<Output = u32> + Send + 'static {
    let (probe, gate) = (probe.clone(), gate.clone());
    async move {
        probe.started.fetch_add(1, Ordering::SeqCst);
        gate.0.notified().await;
        panic!("{message}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_reaches_every_waiter_as_an_error() {
    let group: Group<&'static str, u32> = Group::new();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", panicking(&probe, &gate, "backend exploded")));
    until_started(&probe).await;
    let followers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(group.call_ex(&"k", never(&unused, 2))))
        .collect();
    settle().await;
    gate.open();

    let expected = FlightError::Panicked {
        message: Arc::from("backend exploded"),
    };
    assert_eq!(bounded(leader).await.unwrap(), Err(expected.clone()));
    for follower in followers {
        assert_eq!(bounded(follower).await.unwrap(), Err(expected.clone()));
    }
    assert_eq!(probe.started(), 1);
    assert_eq!(unused.started(), 0);
    assert!(group.is_empty(), "the key recovers at once");

    let next = Arc::new(Probe::default());
    let (value, source) = bounded(group.call_ex(&"k", never(&next, 5))).await.unwrap();
    assert_eq!((value, source), (5, Source::Fresh));
    assert_eq!(next.started(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_formatted_panic_message_is_kept() {
    let group: Group<u32, u32> = Group::new();
    let error = group
        .call(&1, async {
            let code = 503;
            panic!("status {code}")
        })
        .await
        .unwrap_err();
    assert_eq!(
        error,
        FlightError::Panicked {
            message: Arc::from("status 503")
        }
    );
    assert_eq!(error.to_string(), "the shared call panicked: status 503");
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn resumed_panics_unwind_the_leader_and_reach_followers_as_errors() {
    let group = Group::<&'static str, u32>::builder()
        .resume_panics(true)
        .build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", panicking(&probe, &gate, "original payload")));
    until_started(&probe).await;
    let followers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(group.call_ex(&"k", never(&unused, 2))))
        .collect();
    settle().await;
    gate.open();

    let panic = bounded(leader).await.unwrap_err().into_panic();
    assert_eq!(
        panic.downcast_ref::<String>().map(String::as_str),
        Some("original payload")
    );
    for follower in followers {
        assert_eq!(
            bounded(follower).await.unwrap(),
            Err(FlightError::Panicked {
                message: Arc::from("original payload")
            })
        );
    }
    assert_eq!(probe.started(), 1);
    assert_eq!(unused.started(), 0);
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn forget_starts_a_new_flight_and_the_old_one_leaves_it_alone() {
    let group: Group<&'static str, u32> = Group::new();
    let (old, old_gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let (new, new_gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let old_leader = tokio::spawn(group.call_ex(&"k", gated(&old, &old_gate, 1)));
    let old_follower = tokio::spawn(group.call_ex(&"k", never(&unused, 9)));
    until_started(&old).await;
    assert!(group.forget(&"k"));
    assert!(!group.forget(&"k"), "nothing left to forget");
    assert!(group.is_empty());

    let new_leader = tokio::spawn(group.call_ex(&"k", gated(&new, &new_gate, 2)));
    let new_follower = tokio::spawn(group.call_ex(&"k", never(&unused, 9)));
    until_started(&new).await;
    assert_eq!(group.len(), 1);

    old_gate.open();
    assert_eq!(
        bounded(old_leader).await.unwrap().unwrap(),
        (1, Source::Fresh)
    );
    assert_eq!(
        bounded(old_follower).await.unwrap().unwrap(),
        (1, Source::Shared)
    );
    assert_eq!(group.len(), 1, "the old flight left the new one in place");

    // A caller arriving now joins the new flight.
    let newest = tokio::spawn(group.call_ex(&"k", never(&unused, 9)));
    new_gate.open();
    assert_eq!(
        bounded(new_leader).await.unwrap().unwrap(),
        (2, Source::Fresh)
    );
    assert_eq!(
        bounded(new_follower).await.unwrap().unwrap(),
        (2, Source::Shared)
    );
    assert_eq!(bounded(newest).await.unwrap().unwrap(), (2, Source::Shared));

    assert_eq!((old.started(), new.started(), unused.started()), (1, 1, 0));
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn forget_of_an_abandoned_flight_keeps_the_new_one() {
    let group: Group<&'static str, u32> = Group::new();
    let (old, old_gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let (new, new_gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));

    let old_leader = tokio::spawn(group.call_ex(&"k", gated(&old, &old_gate, 1)));
    until_started(&old).await;
    assert!(group.forget(&"k"));
    let new_leader = tokio::spawn(group.call_ex(&"k", gated(&new, &new_gate, 2)));
    old_leader.abort();
    assert!(bounded(old_leader).await.unwrap_err().is_cancelled());
    assert!(old.dropped());
    assert_eq!(old.finished(), 0);
    assert_eq!(group.len(), 1, "cancelling the old flight kept the new one");
    new_gate.open();
    assert_eq!(
        bounded(new_leader).await.unwrap().unwrap(),
        (2, Source::Fresh)
    );
    assert!(group.is_empty());
}

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn a_follower_that_waits_too_long_runs_its_own_work() {
    const TIMEOUT: Duration = Duration::from_millis(100);
    let group = Group::<&'static str, &'static str>::builder()
        .wait_timeout(TIMEOUT)
        .build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let own = Arc::new(Probe::default());

    let start = tokio::time::Instant::now();
    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, "slow")));
    until_started(&probe).await;
    let follower = group.call_ex(&"k", never(&own, "own"));
    assert_eq!(bounded(follower).await.unwrap(), ("own", Source::TimedOut));
    let waited = start.elapsed();
    assert!(
        waited >= TIMEOUT && waited < TIMEOUT + Duration::from_millis(5),
        "{waited:?}"
    );
    assert_eq!(own.started(), 1);
    assert_eq!(group.len(), 1, "the flight goes on");

    gate.open();
    assert_eq!(
        bounded(leader).await.unwrap().unwrap(),
        ("slow", Source::Fresh)
    );
    assert_eq!(probe.started(), 1);
    assert!(group.is_empty());
}

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn a_follower_served_before_its_timeout_shares() {
    let group = Group::<&'static str, &'static str>::builder()
        .wait_timeout(Duration::from_millis(100))
        .build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let own = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, "value")));
    let follower = tokio::spawn(group.call_ex(&"k", never(&own, "own")));
    until_started(&probe).await;
    tokio::time::sleep(Duration::from_millis(99)).await;
    gate.open();
    assert_eq!(
        bounded(leader).await.unwrap().unwrap(),
        ("value", Source::Fresh)
    );
    assert_eq!(
        bounded(follower).await.unwrap().unwrap(),
        ("value", Source::Shared)
    );
    assert_eq!(own.started(), 0);
    assert!(group.is_empty());
}

/// The flight's work ends at the very instant the follower's wait times
/// out, both woken by one tick of the clock, whichever the runtime polls first.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn a_follower_whose_timeout_fires_as_the_flight_ends_takes_its_output() {
    const TIMEOUT: Duration = Duration::from_millis(100);
    let group = Group::<&'static str, &'static str>::builder()
        .wait_timeout(TIMEOUT)
        .build();
    let own = Arc::new(Probe::default());
    // Joined before the leader's work starts its timer: the follower's
    // deadline is the older of the two.
    let leader = group.call_ex(&"k", async {
        tokio::time::sleep(TIMEOUT).await;
        "value"
    });
    let follower = tokio::spawn(group.call_ex(&"k", never(&own, "own")));
    let leader = tokio::spawn(leader);
    assert_eq!(
        bounded(leader).await.unwrap().unwrap(),
        ("value", Source::Fresh)
    );
    assert_eq!(
        bounded(follower).await.unwrap().unwrap(),
        ("value", Source::Shared)
    );
    assert_eq!(own.started(), 0, "no call of its own");
    assert!(group.is_empty());
}

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn a_follower_that_inherited_the_work_does_not_time_out() {
    const TIMEOUT: Duration = Duration::from_millis(100);
    let group = Group::<&'static str, &'static str>::builder()
        .wait_timeout(TIMEOUT)
        .build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let own = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, "original")));
    until_started(&probe).await;
    let follower = tokio::spawn(group.call_ex(&"k", never(&own, "own")));
    settle().await;
    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());
    settle().await;

    tokio::time::sleep(TIMEOUT * 3).await;
    assert_eq!(
        own.started(),
        0,
        "the heir polls the work, it does not wait"
    );
    gate.open();
    assert_eq!(
        bounded(follower).await.unwrap().unwrap(),
        ("original", Source::Shared)
    );
    assert_eq!(probe.started(), 1);
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn followers_beyond_the_limit_are_refused_at_once() {
    let group = Group::<&'static str, u32>::builder().max_waiters(2).build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, 1)));
    let followers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(group.call_ex(&"k", never(&unused, 2))))
        .collect();
    let refused = group.call_ex(&"k", never(&unused, 3));
    assert_eq!(
        refused.now_or_never(),
        Some(Err(FlightError::TooManyWaiters))
    );
    assert_eq!(
        FlightError::TooManyWaiters.to_string(),
        "too many callers are waiting for this key"
    );

    gate.open();
    assert_eq!(bounded(leader).await.unwrap().unwrap(), (1, Source::Fresh));
    for follower in followers {
        assert_eq!(
            bounded(follower).await.unwrap().unwrap(),
            (1, Source::Shared)
        );
    }
    assert_eq!((probe.started(), unused.started()), (1, 0));
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn no_followers_at_all_with_a_limit_of_zero() {
    let group = Group::<&'static str, u32>::builder().max_waiters(0).build();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());
    let leader = tokio::spawn(group.call(&"k", gated(&probe, &gate, 1)));
    assert_eq!(
        group.call(&"k", never(&unused, 2)).now_or_never(),
        Some(Err(FlightError::TooManyWaiters))
    );
    gate.open();
    assert_eq!(bounded(leader).await.unwrap(), Ok(1));
    assert_eq!((probe.started(), unused.started()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn distinct_keys_never_wait_for_each_other() {
    // One shard: the keys share a lock, and still do not wait for each other.
    for shards in [1, 64] {
        let group = Group::<String, u32>::builder().shards(shards).build();
        let (stuck, closed) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
        let blocked = tokio::spawn(group.call(&"stuck".to_string(), gated(&stuck, &closed, 0)));
        until_started(&stuck).await;

        for i in 0..32 {
            let key = format!("free {i}");
            assert_eq!(
                bounded(group.call_ex(&key, async move { i })).await,
                Ok((i, Source::Fresh))
            );
        }
        assert_eq!(group.len(), 1, "only the stuck key is in flight");
        assert!(group.contains("stuck"));
        assert!(!group.contains("free 0"));
        blocked.abort();
        assert!(bounded(blocked).await.unwrap_err().is_cancelled());
        assert!(stuck.dropped());
        assert_eq!(stuck.finished(), 0);
        assert!(group.is_empty());
        assert!(!group.contains("stuck"));
    }
}

/// A key whose every value hashes alike.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Colliding(u32);

impl std::hash::Hash for Colliding {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        0u8.hash(state);
    }
}

#[tokio::test(start_paused = true)]
async fn keys_whose_hashes_collide_keep_their_own_flights() {
    // More keys in flight than a shard keeps in its short list, so that
    // they move to its table, where they all share one hash.
    const KEYS: u32 = 12;
    let group: Group<Colliding, u32> = Group::new();
    let unused = Arc::new(Probe::default());
    let flights: Vec<_> = (1..=KEYS)
        .map(|key| {
            let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
            let leader = tokio::spawn(group.call_ex(&Colliding(key), gated(&probe, &gate, key)));
            (key, probe, gate, leader)
        })
        .collect();
    for (_, probe, _, _) in &flights {
        until_started(probe).await;
    }
    assert_eq!(
        group.len(),
        KEYS as usize,
        "one flight per key, not per hash"
    );
    let followers: Vec<_> = (1..=KEYS)
        .map(|key| tokio::spawn(group.call_ex(&Colliding(key), never(&unused, 0))))
        .collect();
    assert!(group.forget(&Colliding(2)));
    assert!(group.contains(&Colliding(1)) && !group.contains(&Colliding(2)));

    // Opened in reverse order: each caller still gets its own key's value.
    for (_, _, gate, _) in flights.iter().rev() {
        gate.open();
    }
    for ((key, probe, _, leader), follower) in flights.into_iter().zip(followers) {
        assert_eq!(bounded(leader).await.unwrap(), Ok((key, Source::Fresh)));
        assert_eq!(bounded(follower).await.unwrap(), Ok((key, Source::Shared)));
        assert_eq!(probe.started(), 1);
    }
    assert_eq!(unused.started(), 0);
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn keys_are_looked_up_borrowed() {
    let group: Group<String, usize> = Group::new();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());
    let leader = tokio::spawn(group.call_ex("user:7", gated(&probe, &gate, 7)));
    until_started(&probe).await;
    let owned_key = String::from("user:7");
    let follower = tokio::spawn(group.call_ex(owned_key.as_str(), never(&unused, 0)));
    settle().await;
    gate.open();
    assert_eq!(bounded(leader).await.unwrap().unwrap(), (7, Source::Fresh));
    assert_eq!(
        bounded(follower).await.unwrap().unwrap(),
        (7, Source::Shared)
    );
    assert!(!group.forget("user:7"));

    let bytes: Group<Vec<u8>, usize> = Group::new();
    let slice: &[u8] = b"raw";
    assert_eq!(bytes.call(slice, async { 3 }).await, Ok(3));
    assert!(bytes.is_empty());
}

#[tokio::test(start_paused = true)]
async fn sequential_calls_each_run_fresh() {
    let group: Group<u64, u64> = Group::new();
    let executions = Arc::new(AtomicUsize::new(0));
    for i in 0..10 {
        let executions = executions.clone();
        let output = group
            .call_ex(&1, async move {
                executions.fetch_add(1, Ordering::SeqCst);
                i
            })
            .await;
        assert_eq!(output, Ok((i, Source::Fresh)));
        assert!(group.is_empty(), "nothing is cached");
    }
    assert_eq!(executions.load(Ordering::SeqCst), 10);
}

#[tokio::test(start_paused = true)]
async fn clones_of_a_group_share_flights() {
    let group: Group<u8, u8> = Group::default();
    let clone = group.clone();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());
    let leader = tokio::spawn(group.call_ex(&1, gated(&probe, &gate, 1)));
    let follower = tokio::spawn(clone.call_ex(&1, never(&unused, 2)));
    assert_eq!(clone.len(), 1);
    assert!(format!("{clone:?}").contains("in_flight: 1"));
    gate.open();
    assert_eq!(bounded(leader).await.unwrap().unwrap(), (1, Source::Fresh));
    assert_eq!(
        bounded(follower).await.unwrap().unwrap(),
        (1, Source::Shared)
    );
    assert_eq!((probe.started(), unused.started()), (1, 0));
}

#[test]
#[should_panic(expected = "polled after completion")]
fn polling_a_finished_call_panics() {
    let group: Group<u8, u8> = Group::new();
    let mut call = group.call_ex(&1, async { 1 });
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(std::pin::Pin::new(&mut call).poll(&mut cx).is_ready());
    let _ = std::pin::Pin::new(&mut call).poll(&mut cx);
}

#[tokio::test(start_paused = true)]
async fn the_work_goes_to_a_waiter_that_is_being_polled() {
    let group: Group<&'static str, u32> = Group::new();
    let (probe, gate) = (Arc::new(Probe::default()), Arc::new(Gate::default()));
    let unused = Arc::new(Probe::default());

    let leader = tokio::spawn(group.call_ex(&"k", gated(&probe, &gate, 1)));
    until_started(&probe).await;
    // Joined, but held by a caller that is busy elsewhere and not polling it.
    let idle = group.call_ex(&"k", never(&unused, 2));
    let active = tokio::spawn(group.call_ex(&"k", never(&unused, 3)));
    settle().await;
    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());
    settle().await;

    gate.open();
    assert_eq!(bounded(active).await.unwrap().unwrap(), (1, Source::Shared));
    assert_eq!(bounded(idle).await.unwrap(), (1, Source::Shared));
    assert_eq!(
        (probe.started(), probe.finished(), unused.started()),
        (1, 1, 0)
    );
    assert!(group.is_empty());
}

/// Calls into its group when dropped.
struct Reenter(Group<u8, u8>);

impl Drop for Reenter {
    fn drop(&mut self) {
        let _ = self.0.len();
        let _ = self.0.forget(&2);
    }
}

#[test]
fn a_work_dropped_at_once_may_call_into_its_group() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let group = Group::<u8, u8>::builder().max_waiters(1).build();
        let leader = group.call_ex(&1, std::future::pending());
        // A follower drops its work when it joins; a refused caller too.
        let reenter = |group: &Group<u8, u8>| {
            let guard = Reenter(group.clone());
            async move {
                drop(guard);
                1
            }
        };
        let follower = group.call_ex(&1, reenter(&group));
        let refused = group.call_ex(&1, reenter(&group));
        assert_eq!(
            refused.now_or_never(),
            Some(Err(FlightError::TooManyWaiters))
        );
        drop(follower);
        drop(leader);
        assert!(group.is_empty());
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(LIMIT)
        .expect("dropping a work under the group's lock deadlocked");
}

#[tokio::test(start_paused = true)]
async fn a_call_outlives_its_key_and_its_group_handle() {
    let executions = Arc::new(AtomicUsize::new(0));
    let (call, call_ex) = {
        let group: Group<String, usize> = Group::new();
        let key = String::from("borrowed only here");
        let counter = executions.clone();
        let call = group.call(key.as_str(), async move {
            counter.fetch_add(1, Ordering::SeqCst)
        });
        let call_ex = group.call_ex(key.as_str(), async { usize::MAX });
        (tokio::spawn(call), tokio::spawn(call_ex))
    };
    assert_eq!(bounded(call).await.unwrap(), Ok(0));
    assert_eq!(bounded(call_ex).await.unwrap(), Ok((0, Source::Shared)));
    assert_eq!(executions.load(Ordering::SeqCst), 1);
}
