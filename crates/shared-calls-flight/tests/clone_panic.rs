//! A value whose `clone` panics hurts only the caller that cloned it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shared_calls_flight::Group;
use tokio::sync::Notify;

/// Panics on the first clone only.
#[derive(Debug)]
struct FirstCloneFails(Arc<AtomicUsize>);

impl Clone for FirstCloneFails {
    fn clone(&self) -> Self {
        assert!(
            self.0.fetch_add(1, Ordering::SeqCst) != 0,
            "first clone fails"
        );
        Self(self.0.clone())
    }
}

#[tokio::test]
async fn a_panicking_clone_in_the_leader_still_releases_its_followers() {
    let group: Group<String, FirstCloneFails> = Group::new();
    let gate = Arc::new(Notify::new());
    let clones = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (gate, clones) = (gate.clone(), clones.clone());
        tokio::spawn(group.call("key", async move {
            gate.notified().await;
            FirstCloneFails(clones)
        }))
    };
    tokio::task::yield_now().await;
    let follower = tokio::spawn(group.call("key", async {
        unreachable!("a follower's work never runs")
    }));
    tokio::task::yield_now().await;
    gate.notify_one();

    let leader = tokio::time::timeout(Duration::from_secs(5), leader)
        .await
        .expect("the leader finishes");
    assert!(
        leader.unwrap_err().is_panic(),
        "the leader's own clone panicked"
    );
    let follower = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower is not left hanging");
    assert!(follower.unwrap().is_ok());
    assert!(group.is_empty());
}
