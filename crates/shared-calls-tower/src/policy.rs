//! What a protocol decides: keys' types, how a response is shared and
//! stored, and how every kind of answer becomes a response.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use shared_calls_cache::{Accepts, Fetch, Lookup, Outcome, Timing};
use tokio::sync::oneshot;
use tower_service::Service;

/// The storage side of a policy: what is keyed, shared and stored.
///
/// These types do not depend on the inner service, so that one cache can be
/// created with the layer and shared by every service it wraps (axum layers
/// each route separately).
pub trait Policy: Clone + Send + Sync + 'static {
    /// The cache key.
    type Key: Hash + Eq + Clone + Send + Sync + 'static;
    /// The shareable, storable form of a response: cloned to every waiter and
    /// kept in the cache, so make it cheap to clone.
    type Shared: Clone + Send + Sync + 'static;
    /// The shareable form of an inner service's error, handed to the waiters
    /// of the failed call (never stored).
    type Failure: Clone + Send + Sync + 'static;

    /// The bytes a stored answer holds on the heap, for the cache's byte
    /// bound (which counts the entry's inline size and bookkeeping itself).
    /// Zero by default: override it for answers that own heap memory.
    fn weigh(&self, shared: &Self::Shared) -> u32 {
        let _ = shared;
        0
    }

    /// The bytes a stored answer's key holds on the heap, for the byte bound:
    /// a key that may be long (an HTTP URI) takes memory too. Zero by
    /// default.
    fn weigh_key(&self, key: &Self::Key) -> u32 {
        let _ = key;
        0
    }
}

/// Whether a request takes part in sharing, with what the policy keeps of
/// it to shape its answer (its context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission<C> {
    /// Collapse and cache it under its key.
    Share(C),
    /// Call the inner service directly; nothing is shared or stored.
    Bypass(C),
    /// Bypass, and when the inner service answers with success, invalidate
    /// this request's key (a successful unsafe HTTP method, RFC 9111 §4.4).
    BypassAndInvalidate(C),
}

/// How an answer was obtained, for the policy to report (headers, extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// What happened.
    pub outcome: Outcome,
    /// When the answer was loaded and until when it is fresh; none for an
    /// answer the cache did not give.
    pub(crate) timing: Option<Timing>,
    /// Whether the load behind this answer stored it.
    pub stored: bool,
    /// Whether this caller's own inner call produced the answer (it led the
    /// flight, passed, or stopped waiting), as opposed to receiving a copy.
    pub own_call: bool,
}

impl Answer {
    /// An answer that did not involve the cache.
    pub fn bypass() -> Self {
        Self::of(Outcome::Bypass)
    }

    /// An answer with this outcome from this caller's own call, nothing
    /// stored.
    pub fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            timing: None,
            stored: false,
            own_call: true,
        }
    }

    pub(crate) fn from_lookup<V>(lookup: &Lookup<V>, own_call: bool) -> Self {
        Self {
            outcome: lookup.outcome(),
            timing: Some(lookup.timing()),
            stored: lookup.stored(),
            own_call,
        }
    }

    /// How long ago the answer was loaded (zero for one just loaded).
    pub fn age(&self) -> Duration {
        self.timing.map_or(Duration::ZERO, |timing| timing.age())
    }

    /// How much longer the stored answer stays fresh (zero if not stored).
    pub fn fresh_for(&self) -> Duration {
        self.timing
            .map_or(Duration::ZERO, |timing| timing.fresh_for())
    }

    /// Whether the answer came from the cache's second tier: another
    /// instance of the fleet made the call.
    pub fn from_second_tier(&self) -> bool {
        self.timing.is_some_and(|timing| timing.from_second_tier())
    }
}

/// Why a caller received no answer from a flight.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejected {
    /// The inner service panicked while answering the flight this caller
    /// waited for; the message of the panic.
    Panicked(Arc<str>),
    /// Too many callers were waiting for this key.
    Overloaded,
    /// The flight's answer could not be shared and this caller had no
    /// request of its own left to send.
    Unshareable,
    /// The caller takes only a fresh stored answer
    /// ([`ServicePolicy::stored_only`]) and none serves it.
    NotStored,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Panicked(message) => write!(f, "the shared call panicked: {message}"),
            Rejected::Overloaded => f.write_str("too many callers are waiting for this key"),
            Rejected::Unshareable => {
                f.write_str("the shared answer could not be shared with this caller")
            }
            Rejected::NotStored => f.write_str("no fresh stored answer serves this caller"),
        }
    }
}

impl std::error::Error for Rejected {}

/// What a caller is answered with, for the policy to turn into a response.
/// Exhaustive: a policy answers every kind.
pub enum Reply<'a, Req, S: Service<Req>, P: Policy> {
    /// A fresh stored entry found before anything else happened.
    Hit {
        /// The lookup's own copy of the stored answer, to keep rather than
        /// clone once more.
        shared: P::Shared,
        /// How it was obtained.
        answer: Answer,
    },
    /// The answer of a flight, or a stored one the flight found.
    Shared {
        /// The shared answer.
        shared: &'a P::Shared,
        /// How it was obtained ([`Answer::own_call`] when this caller's
        /// request produced it).
        answer: Answer,
    },
    /// The flight failed: the failure as [`ServicePolicy::share`] made it.
    Failed {
        /// The shared failure.
        failure: &'a P::Failure,
        /// How it was obtained.
        answer: Answer,
    },
    /// The caller received nothing from the flight.
    Rejected(Rejected),
    /// The inner service's own result for a caller that was not shared
    /// (bypass, or an answer that did not serve it).
    Own {
        /// The inner service's result (its readiness error included).
        result: Result<S::Response, S::Error>,
        /// How it was obtained.
        answer: Answer,
    },
}

impl<Req, S: Service<Req>, P: Policy> fmt::Debug for Reply<'_, Req, S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, answer) = match self {
            Reply::Hit { answer, .. } => ("Hit", Some(answer)),
            Reply::Shared { answer, .. } => ("Shared", Some(answer)),
            Reply::Failed { answer, .. } => ("Failed", Some(answer)),
            Reply::Rejected(_) => ("Rejected", None),
            Reply::Own { answer, .. } => ("Own", Some(answer)),
        };
        f.debug_struct("Reply")
            .field("kind", &kind)
            .field("answer", &answer)
            .finish_non_exhaustive()
    }
}

/// The leader's way to its own client: the policy may hand it its response
/// as soon as the inner service's head is known, while the shared answer is
/// still being completed (an HTTP body streaming in).
pub struct Leader<R> {
    sender: Option<oneshot::Sender<(R, Outcome)>>,
    outcome: Outcome,
}

impl<R> Leader<R> {
    pub(crate) fn channel() -> (Self, oneshot::Receiver<(R, Outcome)>) {
        let (sender, receiver) = oneshot::channel();
        let leader = Self {
            sender: Some(sender),
            outcome: Outcome::Miss,
        };
        (leader, receiver)
    }

    /// A leader nobody waits for (a background refresh): [`send`](Self::send)
    /// hands the response back.
    pub fn detached() -> Self {
        Self {
            sender: None,
            outcome: Outcome::Miss,
        }
    }

    pub(crate) fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// How the leader's own answer was obtained: [`Outcome::Miss`] for the
    /// flight's call, [`Outcome::Pass`] for a key marked hit-for-miss,
    /// [`Outcome::LockTimeout`] for a caller that stopped waiting for
    /// another's; its own call, nothing stored yet.
    pub fn answer(&self) -> Answer {
        Answer::of(self.outcome)
    }

    /// Answers the leader now; the response comes back if it has gone.
    pub fn send(mut self, response: R) -> Result<(), R> {
        match self.sender.take() {
            Some(sender) => sender
                .send((response, self.outcome))
                .map_err(|(response, _)| response),
            None => Err(response),
        }
    }
}

impl<R> fmt::Debug for Leader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leader")
            .field("outcome", &self.outcome)
            .field("detached", &self.sender.is_none())
            .finish()
    }
}

/// The service side of a policy: everything that needs the request and the
/// inner service's types.
pub trait ServicePolicy<Req, S: Service<Req>>: Policy {
    /// What the layer's service answers with.
    type Response;
    /// The layer's service error.
    type Error;
    /// What the policy keeps of a request to shape its answer after the
    /// request itself has been handed on. It is made for every request,
    /// hits included, and cloned for a leader's call: keep it cheap.
    type Context: Clone + Send + Sync + 'static;
    /// Turns the inner service's result into its shareable form, or into
    /// a failure (an HTTP 5xx, say) that is shared with the current waiters
    /// but never stored, and may be answered by a stale entry instead.
    type Share: Future<Output = Result<Fetch<Self::Shared>, Self::Failure>> + Send + 'static;

    /// Whether the request is shared, bypassed, or invalidates its key, and
    /// its context. Called once per request, before the key function.
    fn admit(&self, request: &Req) -> Admission<Self::Context>;

    /// Which stored answers the request takes, when it decides that itself
    /// rather than by their freshness (an HTTP client's `max-age`,
    /// `min-fresh` or `max-stale`): a stored answer it does not take is
    /// loaded anew through the key's flight, collapsed with the others; a
    /// stale one it takes answers it while a background refresh runs.
    /// `None` (the stored answer's freshness decides) by default.
    fn accepts_stored(&self, context: &Self::Context) -> Option<Accepts<Self::Shared>> {
        let _ = context;
        None
    }

    /// Whether the request may be answered only by a fresh stored answer
    /// (HTTP's `only-if-cached`): it never calls the inner service nor joins
    /// a flight, and without such an answer (a bypassed request never has
    /// one) it is answered [`Reply::Rejected`]`(`[`Rejected::NotStored`]`)`.
    /// `false` by default.
    fn stored_only(&self, context: &Self::Context) -> bool {
        let _ = context;
        false
    }

    /// What a request that missed sends to the inner service if it calls
    /// (HTTP turns `HEAD` into `GET`, so that the stored answer has a body),
    /// and what its context must remember of it to share, store or match an
    /// answer once the request has been handed on. Called once per miss,
    /// before the request leads or joins a flight. Unchanged by default.
    fn prepare(&self, request: Req, context: &mut Self::Context) -> Req {
        let _ = context;
        request
    }

    /// The leader's inner result, made shareable, with how to store it: a
    /// [`Fetch::value`], with a TTL, stale windows or `do_not_store` as the
    /// response says. The policy may answer the leader early through
    /// `leader`; otherwise the leader is answered from the shared result like
    /// everyone else. A layer has no use for [`Fetch::absent`]: every caller
    /// would be answered [`Rejected::Unshareable`] until the negative TTL
    /// passes.
    fn share(
        &self,
        result: Result<S::Response, S::Error>,
        context: &Self::Context,
        leader: Leader<Self::Response>,
    ) -> Self::Share;

    /// Whether a shared or stored answer serves this request: `false` for a
    /// `Vary` variant of another request, or for an answer meant for its own
    /// client only. `request` is `None` when the caller's request was
    /// consumed by its own call or left to a background refresh (the context
    /// then tells what it was). Such a request goes to its
    /// [`variant_key`](Self::variant_key), or else to the inner service on
    /// its own, if it still has it, and is otherwise answered
    /// [`Reply::Rejected`]`(`[`Rejected::Unshareable`]`)`. `true` by default.
    fn serves(
        &self,
        shared: &Self::Shared,
        answer: &Answer,
        request: Option<&Req>,
        context: &Self::Context,
    ) -> bool {
        let _ = (shared, answer, request, context);
        true
    }

    /// The key under which the variant of `request` is kept, when `shared`
    /// (stored under `key`, or the answer of `key`'s flight) does not serve
    /// it: an HTTP answer that varies on `Accept-Language` keeps each
    /// language under a key of its own, made of `key` and the request's
    /// values. The request then looks up, collapses and stores under that
    /// key, once; `None` (the default) sends it to the inner service alone.
    fn variant_key(
        &self,
        key: &Self::Key,
        shared: &Self::Shared,
        request: &Req,
    ) -> Option<Self::Key> {
        let _ = (key, shared, request);
        None
    }

    /// The response (or error) for a reply.
    fn respond(
        &self,
        reply: Reply<'_, Req, S, Self>,
        context: &Self::Context,
    ) -> Result<Self::Response, Self::Error>;

    /// Whether an inner response to an invalidating request succeeded, so
    /// that its key is invalidated.
    fn confirms_invalidation(&self, response: &S::Response) -> bool {
        let _ = response;
        true
    }

    /// The keys that a confirmed invalidation of `key` invalidates besides
    /// it: HTTP's `Location` and `Content-Location` of the same origin
    /// (RFC 9111 §4.4). None by default.
    fn also_invalidates(
        &self,
        key: &Self::Key,
        context: &Self::Context,
        response: &S::Response,
    ) -> Vec<Self::Key> {
        let _ = (key, context, response);
        Vec::new()
    }
}
