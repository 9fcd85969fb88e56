//! The future of one caller of a [`Group`](crate::Group).

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::FlightError;
use crate::flight::{Flight, Left, Next, Work, complete, hand_off, poll_work};
use crate::group::Config;
use crate::shard::Ticket;
use crate::sync::{Arc, Exclusive};

/// Where a caller's value came from: go-zero's `DoEx` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// This caller's own work ran (it led the flight): the value is fresh.
    Fresh,
    /// Another caller's flight produced the value; this caller has a clone.
    Shared,
    /// This caller waited longer than the group's wait timeout, stopped
    /// waiting and ran its own work outside the flight.
    TimedOut,
}

/// The future returned by [`Group::call_ex`](crate::Group::call_ex).
///
/// It resolves to the value and its [`Source`], or to the flight's error.
/// Dropping it never cancels work that other callers wait for (see the
/// group's `# Cancellation` section).
#[must_use = "futures do nothing unless polled"]
pub struct Call<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    state: State<K, T>,
}

/// A follower's own work, made only if it stops waiting.
#[cfg(all(feature = "tokio", not(shared_calls_loom)))]
type MakeWork<T> = Exclusive<Box<dyn FnOnce(Source) -> Work<T> + Send + 'static>>;

/// When a follower stops waiting.
#[cfg(all(feature = "tokio", not(shared_calls_loom)))]
type Deadline = Pin<Box<tokio::time::Sleep>>;

/// The work and the closure are only `Send`; they are reached through `&mut`
/// alone ([`Exclusive`]), which keeps `Call` `Sync`.
enum State<K, T> {
    /// Polling the flight's work: the leader, or a follower that took over.
    Drive {
        ticket: Ticket<K, T>,
        work: Exclusive<Work<T>>,
        source: Source,
    },
    /// Waiting for another caller to complete the flight.
    Wait {
        flight: Arc<Flight<K, T>>,
        /// Its place among the flight's waiters, from its first poll.
        slot: Option<usize>,
        /// How to make this caller's own work and when to fall back to it,
        /// only with a wait timeout.
        #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
        /// The deadline is `None` once it has passed.
        timeout: Option<(MakeWork<T>, Option<Deadline>)>,
    },
    /// Running this caller's own work outside any flight, after waiting
    /// too long.
    #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
    TimedOut {
        work: Exclusive<Work<T>>,
    },
    Refused,
    Finished,
}

impl<K, T> Call<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// Leads the flight behind `ticket` with the work `make_work` makes. If
    /// `make_work` panics, the flight ends with that panic for the followers
    /// that joined meanwhile, and the panic goes on unwinding in the caller.
    pub(crate) fn lead_with<W, F>(ticket: Ticket<K, T>, make_work: W) -> Self
    where
        W: FnOnce(Source) -> F,
        F: Future<Output = T> + Send + 'static,
    {
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Box::pin(make_work(Source::Fresh)) as Work<T>
        }));
        match made {
            Ok(work) => Self::lead(ticket, work),
            Err(payload) => unmade(&ticket, payload),
        }
    }

    fn lead(ticket: Ticket<K, T>, work: Work<T>) -> Self {
        Self {
            state: State::Drive {
                ticket,
                work: Exclusive::new(work),
                source: Source::Fresh,
            },
        }
    }

    pub(crate) fn follow<W, F>(flight: Arc<Flight<K, T>>, make_work: W, config: &Config) -> Self
    where
        W: FnOnce(Source) -> F + Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        // Built first, so that the follower leaves if anything below panics
        // (`sleep` does outside a tokio runtime with timers).
        #[cfg_attr(
            not(all(feature = "tokio", not(shared_calls_loom))),
            expect(unused_mut, reason = "no timeout to set")
        )]
        let mut call = Self {
            state: State::Wait {
                flight,
                slot: None,
                #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
                timeout: None,
            },
        };
        #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
        if let State::Wait { timeout, .. } = &mut call.state
            && let Some(wait) = config.wait_timeout
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let deadline = Box::pin(tokio::time::sleep(wait));
            let make_work: Box<dyn FnOnce(Source) -> Work<T> + Send> =
                Box::new(move |source| Box::pin(make_work(source)));
            *timeout = Some((Exclusive::new(make_work), Some(deadline)));
        }
        #[cfg(not(all(feature = "tokio", not(shared_calls_loom))))]
        drop((make_work, config));
        call
    }

    pub(crate) fn refused() -> Self {
        Self {
            state: State::Refused,
        }
    }

    /// Polls the work this caller drives; `Some` once it has an output.
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(T, Source), FlightError>> {
        let State::Drive { work, .. } = &mut self.state else {
            unreachable!("poll_drive outside Drive")
        };
        let output = std::task::ready!(poll_work(work.get_mut(), cx));
        let State::Drive { ticket, source, .. } =
            std::mem::replace(&mut self.state, State::Finished)
        else {
            unreachable!()
        };
        match output {
            Ok(value) => Poll::Ready(complete(&ticket, Ok(value)).map(|value| (value, source))),
            Err(payload) => {
                let error = FlightError::from_panic(&*payload);
                drop(complete(&ticket, Err(error.clone())));
                if source == Source::Fresh && ticket.config().resume_panics {
                    std::panic::resume_unwind(payload);
                }
                Poll::Ready(Err(error))
            }
        }
    }

    /// Waits for the flight; `Ready(None)` when this caller has to go on in
    /// another state (it inherited the work, or stopped waiting).
    fn poll_wait(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(T, Source), FlightError>>> {
        let State::Wait { flight, slot, .. } = &mut self.state else {
            unreachable!("poll_wait outside Wait")
        };
        match flight.poll_follower(slot, cx.waker()) {
            Next::Done => {
                let State::Wait { flight, .. } =
                    std::mem::replace(&mut self.state, State::Finished)
                else {
                    unreachable!()
                };
                // Cloned unlocked: `T::clone` is user code.
                let output = flight.output.get().expect("published before `Done`");
                return Poll::Ready(Some(output.map(|value| (value, Source::Shared))));
            }
            Next::Inherit(work, ticket) => {
                self.state = State::Drive {
                    ticket,
                    work: Exclusive::new(work),
                    source: Source::Shared,
                };
                return Poll::Ready(None);
            }
            Next::Wait => {}
        }
        #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
        if let State::Wait {
            timeout: Some((_, deadline)),
            ..
        } = &mut self.state
        {
            let Some(sleep) = deadline else {
                return Poll::Ready(self.stop_waiting());
            };
            if sleep.as_mut().poll(cx).is_ready() {
                // One more turn first: a flight whose work ends at this very
                // instant (its task woken by the same tick) answers this
                // follower instead of a call of its own.
                *deadline = None;
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }

    /// The wait timed out: the follower leaves the flight and runs its own
    /// work, unless the flight completed meanwhile. `None` when it goes on
    /// in another state.
    #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
    fn stop_waiting(&mut self) -> Option<Result<(T, Source), FlightError>> {
        let State::Wait {
            flight,
            slot,
            timeout: Some((make_work, _)),
        } = std::mem::replace(&mut self.state, State::Finished)
        else {
            unreachable!("stop_waiting outside a timed wait")
        };
        if Flight::leave(&flight, slot) == Left::Completed {
            let output = flight.output.get().expect("completed");
            return Some(output.map(|value| (value, Source::Shared)));
        }
        self.state = State::TimedOut {
            work: Exclusive::new(make_work.into_inner()(Source::TimedOut)),
        };
        None
    }

    /// Dropped before it finished: the work it drives passes on, or it
    /// stops waiting.
    #[inline(never)]
    fn abandon(&mut self) {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Drive { ticket, work, .. } => hand_off(&ticket, work.into_inner(), true),
            State::Wait { flight, slot, .. } => drop(Flight::leave(&flight, slot)),
            _ => {}
        }
    }

    #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
    fn poll_timed_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(T, Source), FlightError>> {
        let State::TimedOut { work } = &mut self.state else {
            unreachable!("poll_timed_out outside TimedOut")
        };
        let output = std::task::ready!(poll_work(work.get_mut(), cx));
        self.state = State::Finished;
        Poll::Ready(
            output
                .map(|value| (value, Source::TimedOut))
                .map_err(|payload| FlightError::from_panic(&*payload)),
        )
    }
}

impl<K, T> Future for Call<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    type Output = Result<(T, Source), FlightError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Drive { .. } => return this.poll_drive(cx),
                State::Wait { .. } => {
                    if let Some(output) = std::task::ready!(this.poll_wait(cx)) {
                        return Poll::Ready(output);
                    }
                }
                #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
                State::TimedOut { .. } => return this.poll_timed_out(cx),
                State::Refused => {
                    this.state = State::Finished;
                    return Poll::Ready(Err(FlightError::TooManyWaiters));
                }
                State::Finished => panic!("`Call` polled after completion"),
            }
        }
    }
}

/// A leader's `make_work` panicked: the flight ends with the panic for its
/// followers, and the key is free at once.
#[cold]
#[inline(never)]
fn unmade<K, T: Clone>(ticket: &Ticket<K, T>, payload: Box<dyn std::any::Any + Send>) -> ! {
    drop(complete(ticket, Err(FlightError::from_panic(&*payload))));
    std::panic::resume_unwind(payload)
}

/// The future of [`Group::call`](crate::Group::call): a [`Call`] without the
/// [`Source`] (a named future rather than an `async` block, which would hold
/// the call twice).
pub(crate) struct ValueOnly<K, T>(pub(crate) Call<K, T>)
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static;

impl<K, T> Future for ValueOnly<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    type Output = Result<T, FlightError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|output| output.map(|(value, _)| value))
    }
}

impl<K, T> Drop for Call<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    // Inlined, a finished call's drop costs a comparison.
    #[inline]
    fn drop(&mut self) {
        if !matches!(self.state, State::Finished) {
            self.abandon();
        }
    }
}

impl<K, T> fmt::Debug for Call<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Drive { .. } => "driving",
            State::Wait { .. } => "waiting",
            #[cfg(all(feature = "tokio", not(shared_calls_loom)))]
            State::TimedOut { .. } => "timed out, running alone",
            State::Refused => "refused",
            State::Finished => "finished",
        };
        f.debug_struct("Call").field("state", &state).finish()
    }
}
