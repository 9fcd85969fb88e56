//! Random interleavings on a hand-driven executor: calls on a few keys are
//! created, polled in random order, dropped, their works completed or made to
//! panic, keys forgotten. A model of the group predicts which flight each
//! call joins; the test checks every outcome against it, that no work runs
//! twice or for a follower, that abandoned work is dropped, and that once
//! every gate is open, every remaining caller finishes by wake-ups alone.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};

use proptest::prelude::*;
use proptest::sample::Index;
use shared_calls_flight::{Call, FlightError, Group, Source};

/// A task's "scheduled" flag, set by its waker.
#[derive(Default)]
struct Task {
    woken: AtomicBool,
    wakes: AtomicUsize,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.woken.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Value,
    Panic,
}

/// What a work waits for: the test opens it with an outcome.
#[derive(Default)]
struct Gate(Mutex<(Option<Outcome>, Option<Waker>)>);

impl Gate {
    fn open(&self, outcome: Outcome) {
        let waker = {
            let mut gate = self.0.lock().unwrap();
            if gate.0.is_some() {
                return;
            }
            gate.0 = Some(outcome);
            gate.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
    fn outcome(&self) -> Option<Outcome> {
        self.0.lock().unwrap().0
    }
}

/// What happened to one work future.
#[derive(Default)]
struct Record {
    polls: AtomicUsize,
    completed: AtomicBool,
    dropped: AtomicBool,
}

/// A caller's work: waits for its gate, then returns its caller's id or
/// panics.
struct Work {
    id: u32,
    gate: Arc<Gate>,
    record: Arc<Record>,
}

impl Future for Work {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        assert!(
            !self.record.completed.load(Ordering::SeqCst),
            "work polled after it completed"
        );
        self.record.polls.fetch_add(1, Ordering::SeqCst);
        let mut gate = self.gate.0.lock().unwrap();
        match gate.0 {
            None => {
                gate.1 = Some(cx.waker().clone());
                Poll::Pending
            }
            Some(outcome) => {
                drop(gate);
                self.record.completed.store(true, Ordering::SeqCst);
                match outcome {
                    Outcome::Value => Poll::Ready(self.id),
                    Outcome::Panic => panic!("work {} failed", self.id),
                }
            }
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        self.record.dropped.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A new call on a key.
    Call(u8),
    /// Poll a call, woken or not (spurious polls are allowed).
    Poll(Index),
    /// Drop a call.
    Drop(Index),
    /// Move a call to another task: it is polled with a new waker.
    Move(Index),
    /// Let a flight's work finish, with a value or a panic.
    Open(Index, Outcome),
    /// Forget a key.
    Forget(u8),
}

const KEYS: u8 = 3;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS).prop_map(Op::Call),
        6 => any::<Index>().prop_map(Op::Poll),
        2 => any::<Index>().prop_map(Op::Drop),
        1 => any::<Index>().prop_map(Op::Move),
        2 => (any::<Index>(), prop_oneof![4 => Just(Outcome::Value), 1 => Just(Outcome::Panic)])
            .prop_map(|(i, o)| Op::Open(i, o)),
        1 => (0..KEYS).prop_map(Op::Forget),
    ]
}

type Output = Result<(u32, Source), FlightError>;

struct Caller {
    call: Option<Pin<Box<Call<u8, u32>>>>,
    task: Arc<Task>,
    waker: Waker,
    flight: usize,
    leader: bool,
    output: Option<Output>,
    dropped: bool,
    work: Arc<Record>,
}

impl Caller {
    fn pending(&self) -> bool {
        self.call.is_some()
    }
}

struct Flight {
    leader: usize,
    gate: Arc<Gate>,
    /// The flight's work: the leader's.
    work: Arc<Record>,
}

impl Flight {
    fn ended(&self) -> bool {
        self.work.completed.load(Ordering::SeqCst) || self.work.dropped.load(Ordering::SeqCst)
    }
}

/// The group under test and a model of it.
struct Sim {
    group: Group<u8, u32>,
    callers: Vec<Caller>,
    flights: Vec<Flight>,
    /// The flight the group should have registered for each key.
    current: HashMap<u8, usize>,
}

fn new_task() -> (Arc<Task>, Waker) {
    let task = Arc::new(Task::default());
    // Never polled yet: a new task is scheduled.
    task.woken.store(true, Ordering::SeqCst);
    (task.clone(), Waker::from(task))
}

impl Sim {
    fn new(shards: usize) -> Self {
        Self {
            group: Group::<u8, u32>::builder().shards(shards).build(),
            callers: Vec::new(),
            flights: Vec::new(),
            current: HashMap::new(),
        }
    }

    fn call(&mut self, key: u8) {
        let id = self.callers.len();
        let gate = Arc::new(Gate::default());
        let work = Arc::new(Record::default());
        let call = self.group.call_ex(
            &key,
            Work {
                id: id as u32,
                gate: gate.clone(),
                record: work.clone(),
            },
        );
        let (flight, leader) = match self.current.get(&key) {
            Some(&flight) => (flight, false),
            None => {
                self.flights.push(Flight {
                    leader: id,
                    gate,
                    work: work.clone(),
                });
                let flight = self.flights.len() - 1;
                self.current.insert(key, flight);
                (flight, true)
            }
        };
        if !leader {
            assert!(
                work.dropped.load(Ordering::SeqCst),
                "a follower drops its own work at once"
            );
        }
        let (task, waker) = new_task();
        self.callers.push(Caller {
            call: Some(Box::pin(call)),
            task,
            waker,
            flight,
            leader,
            output: None,
            dropped: false,
            work,
        });
    }

    fn poll(&mut self, index: usize) {
        let caller = &mut self.callers[index];
        let Some(call) = caller.call.as_mut() else {
            return;
        };
        caller.task.woken.store(false, Ordering::SeqCst);
        let mut cx = Context::from_waker(&caller.waker);
        if let Poll::Ready(output) = call.as_mut().poll(&mut cx) {
            caller.call = None;
            self.check_output(index, &output);
            self.callers[index].output = Some(output);
        }
    }

    fn check_output(&self, index: usize, output: &Output) {
        let caller = &self.callers[index];
        let flight = &self.flights[caller.flight];
        let outcome = flight
            .gate
            .outcome()
            .expect("a flight completed before its gate opened");
        let expected = match outcome {
            Outcome::Value => Ok((
                flight.leader as u32,
                if caller.leader {
                    Source::Fresh
                } else {
                    Source::Shared
                },
            )),
            Outcome::Panic => Err(FlightError::Panicked {
                message: Arc::from(format!("work {} failed", flight.leader)),
            }),
        };
        assert_eq!(
            output, &expected,
            "caller {index} of flight {}",
            caller.flight
        );
    }

    fn drop_call(&mut self, index: usize) {
        let caller = &mut self.callers[index];
        if caller.call.take().is_none() {
            return;
        }
        caller.dropped = true;
        let flight = caller.flight;
        let waiting = self
            .callers
            .iter()
            .any(|caller| caller.flight == flight && caller.pending());
        let work = &self.flights[flight].work;
        if !waiting && !work.completed.load(Ordering::SeqCst) {
            assert!(
                work.dropped.load(Ordering::SeqCst),
                "the last caller of flight {flight} left: its work is cancelled"
            );
        }
    }

    fn move_call(&mut self, index: usize) {
        let caller = &mut self.callers[index];
        if caller.pending() {
            (caller.task, caller.waker) = new_task();
        }
    }

    fn open(&mut self, index: usize, outcome: Outcome) {
        self.flights[index].gate.open(outcome);
    }

    fn forget(&mut self, key: u8) {
        let expected = self.current.remove(&key).is_some();
        assert_eq!(self.group.forget(&key), expected, "forget({key})");
    }

    /// Flights whose work completed or was dropped left the group's map.
    fn sync(&mut self) {
        let flights = &self.flights;
        self.current.retain(|_, flight| !flights[*flight].ended());
        assert_eq!(self.group.len(), self.current.len());
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Call(key) => self.call(key),
            Op::Poll(i) if !self.callers.is_empty() => self.poll(i.index(self.callers.len())),
            Op::Drop(i) if !self.callers.is_empty() => self.drop_call(i.index(self.callers.len())),
            Op::Move(i) if !self.callers.is_empty() => self.move_call(i.index(self.callers.len())),
            Op::Open(i, outcome) if !self.flights.is_empty() => {
                self.open(i.index(self.flights.len()), outcome);
            }
            Op::Forget(key) => self.forget(key),
            _ => {}
        }
        self.sync();
    }

    /// Opens every gate, then polls woken callers only, as an executor
    /// would, until none is woken: every caller left must have finished.
    fn drain(&mut self) {
        for flight in &self.flights {
            flight.gate.open(Outcome::Value);
        }
        let mut rounds = 0;
        loop {
            let woken: Vec<usize> = (0..self.callers.len())
                .filter(|&i| {
                    self.callers[i].pending() && self.callers[i].task.woken.load(Ordering::SeqCst)
                })
                .collect();
            if woken.is_empty() {
                break;
            }
            for i in woken {
                self.poll(i);
            }
            self.sync();
            rounds += 1;
            assert!(rounds < 10_000, "callers keep waking without finishing");
        }
        for (i, caller) in self.callers.iter().enumerate() {
            assert!(
                !caller.pending(),
                "caller {i} of flight {} was never woken (wakes: {})",
                caller.flight,
                caller.task.wakes.load(Ordering::SeqCst)
            );
            assert!(caller.dropped || caller.output.is_some());
        }
        assert!(self.current.is_empty());
        assert!(self.group.is_empty());
    }

    fn check_executions(&self) {
        let mut executions = 0;
        for (i, caller) in self.callers.iter().enumerate() {
            let polls = caller.work.polls.load(Ordering::SeqCst);
            if !caller.leader {
                assert_eq!(polls, 0, "caller {i}'s own work ran: the flight restarted");
            } else if polls > 0 {
                executions += 1;
            }
        }
        for (f, flight) in self.flights.iter().enumerate() {
            let served = self
                .callers
                .iter()
                .any(|caller| caller.flight == f && caller.output.is_some());
            if served {
                assert!(flight.work.completed.load(Ordering::SeqCst));
            }
            assert!(
                flight.work.dropped.load(Ordering::SeqCst),
                "flight {f}'s work is gone at the end"
            );
        }
        assert!(executions <= self.flights.len());
        let fresh = self
            .callers
            .iter()
            .filter(|caller| matches!(caller.output, Some(Ok((_, Source::Fresh)))))
            .count();
        assert!(fresh <= executions);
    }
}

/// Keeps the expected panics of `Outcome::Panic` out of the test output.
fn quiet_work_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|message| message.starts_with("work "));
            if !expected {
                default(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_interleavings_match_the_model(
        ops in prop::collection::vec(op(), 1..80),
        one_shard in any::<bool>(),
    ) {
        quiet_work_panics();
        let mut sim = Sim::new(if one_shard { 1 } else { 16 });
        for op in &ops {
            sim.apply(op);
        }
        sim.drain();
        sim.check_executions();
    }
}

#[test]
fn a_leader_dropped_before_its_first_poll_hands_over_an_unstarted_work() {
    let mut sim = Sim::new(16);
    sim.call(0);
    sim.call(0);
    sim.drop_call(0);
    sim.sync();
    sim.open(0, Outcome::Value);
    sim.drain();
    sim.check_executions();
    assert_eq!(sim.callers[1].output, Some(Ok((0, Source::Shared))));
}
