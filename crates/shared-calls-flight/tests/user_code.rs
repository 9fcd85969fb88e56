//! User code handed to a group (`make_work`, a key's `to_owned`, a
//! `forget_if` predicate) may panic or call into the group: it never leaves
//! an entry behind and never runs under a shard's lock.

use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use shared_calls_flight::{Call, FlightError, Group, Source};

/// Runs `test` on a thread of its own and fails if it does not end in time:
/// a lock taken twice on one thread hangs instead of failing.
fn without_deadlock(test: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        test();
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the test deadlocked or panicked");
}

#[tokio::test]
async fn a_panicking_make_work_leaves_no_entry_and_fails_its_followers() {
    let group: Group<String, u32> = Group::new();
    let follower: Arc<Mutex<Option<Call<String, u32>>>> = Arc::default();
    let made = {
        let (group, follower) = (group.clone(), follower.clone());
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            group.clone().call_with("key", move |_| {
                // A follower joins while the leader's work is being made.
                let joined = group.call_ex("key", async { unreachable!("the flight runs") });
                *follower.lock().unwrap() = Some(joined);
                panic!("no work today");
                #[allow(unreachable_code)]
                async {
                    0
                }
            })
        }))
    };
    let payload = made.expect_err("the panic unwinds in the caller that made the work");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"no work today"));
    assert!(group.is_empty(), "no entry is left behind");

    let follower = follower.lock().unwrap().take().expect("a follower joined");
    let shared = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower is released");
    assert_eq!(
        shared,
        Err(FlightError::Panicked {
            message: "no work today".into()
        })
    );
    let again = group.call_ex("key", async { 7 }).await;
    assert_eq!(again, Ok((7, Source::Fresh)), "the key works at once");
}

/// A key whose `clone` (hence `to_owned`) and destructor call into the
/// group that holds it.
struct Reentrant {
    id: u8,
    group: Arc<OnceLock<Group<Reentrant, u8>>>,
}

impl Reentrant {
    fn touch_group(&self) {
        if let Some(group) = self.group.get() {
            // Locks every shard, this key's included.
            let _ = group.len();
            let _ = group.contains(&Reentrant {
                id: self.id.wrapping_add(1),
                group: Arc::default(),
            });
        }
    }
}

impl Clone for Reentrant {
    fn clone(&self) -> Self {
        self.touch_group();
        Self {
            id: self.id,
            group: self.group.clone(),
        }
    }
}

impl PartialEq for Reentrant {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Reentrant {}

impl Hash for Reentrant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

#[test]
fn to_owned_of_a_key_runs_outside_the_shard_lock() {
    without_deadlock(|| {
        let handle = Arc::new(OnceLock::new());
        let group = handle.get_or_init(|| Group::<Reentrant, u8>::builder().shards(1).build());
        let key = Reentrant {
            id: 1,
            group: handle.clone(),
        };
        let call = group.call_ex(&key, async { 5 });
        assert_eq!(call.now_or_never(), Some(Ok((5, Source::Fresh))));
        assert!(group.is_empty());
    });
}

#[test]
fn forget_if_predicates_run_outside_the_shard_lock() {
    without_deadlock(|| {
        let group: Group<u8, u8> = Group::builder().shards(1).build();
        let mut running = Box::pin(group.call(&1, futures::future::pending::<u8>()));
        assert!((&mut running).now_or_never().is_none());
        let mut kept = Box::pin(group.call(&2, futures::future::pending::<u8>()));
        assert!((&mut kept).now_or_never().is_none());

        group.forget_if(|key| {
            // Calls into the group from the predicate.
            assert!(group.contains(key));
            *key == 1
        });
        assert!(!group.contains(&1), "the matching flight is forgotten");
        assert!(group.contains(&2), "the other one is not");
        assert_eq!(group.len(), 1);
    });
}
