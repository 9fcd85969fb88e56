//! What a protocol decides: keys' types, how a response is shared and
//! stored, and how every kind of answer becomes a response.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use shared_calls_cache::{Fetch, Lookup, Outcome, Timing};
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

    /// The weight of a stored answer, for a cache bounded by weight. One by
    /// default.
    fn weigh(&self, shared: &Self::Shared) -> u32 {
        let _ = shared;
        1
    }

    /// The weight of a stored answer's key, added to [`weigh`](Self::weigh)
    /// for a cache bounded by weight: a key that may be long (an HTTP URI)
    /// takes memory too. Zero by default.
    fn weigh_key(&self, key: &Self::Key) -> u32 {
        let _ = key;
        0
    }
}

/// Whether a request takes part in sharing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Collapse and cache it under its key.
    Share,
    /// Call the inner service directly; nothing is shared or stored.
    Bypass,
    /// Bypass, and when the inner service answers with success, invalidate
    /// this request's key (a successful unsafe HTTP method, RFC 9111 §4.4).
    BypassAndInvalidate,
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
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Panicked(message) => write!(f, "the shared call panicked: {message}"),
            Rejected::Overloaded => f.write_str("too many callers are waiting for this key"),
            Rejected::Unshareable => {
                f.write_str("the shared answer could not be shared with this caller")
            }
        }
    }
}

impl std::error::Error for Rejected {}

/// The service side of a policy: everything that needs the request and the
/// inner service's types.
pub trait ServicePolicy<Req, S: Service<Req>>: Policy {
    /// What the layer's service answers with.
    type Response;
    /// The layer's service error.
    type Error;
    /// What the policy keeps of a request to shape its answer after the
    /// request itself has been handed on (keep it cheap: it is made for
    /// every request that is not a hit).
    type Context: Send + 'static;
    /// Turns the inner service's response into its shareable form, or into
    /// a failure (an HTTP 5xx, say) that is shared with the current waiters
    /// but never stored, and may be answered by a stale entry instead.
    type Share: Future<Output = Result<Fetch<Self::Shared>, Self::Failure>> + Send + 'static;

    /// Whether the request is shared, bypassed, or invalidates its key.
    /// Called before the key function.
    fn admit(&self, request: &Req) -> Admission;

    /// What to keep of the request.
    fn context(&self, request: &Req) -> Self::Context;

    /// The request a leader sends to the inner service (HTTP turns `HEAD`
    /// into `GET`, so that the stored answer has a body). Unchanged by
    /// default.
    fn prepare(&self, request: Req) -> Req {
        request
    }

    /// The leader's inner response, made shareable, with how to store it:
    /// a [`Fetch::value`], with a TTL, stale windows or `do_not_store` as
    /// the response says. A layer has no use for [`Fetch::absent`]: every
    /// caller would be answered [`Rejected::Unshareable`] until the negative
    /// TTL passes.
    fn share(&self, response: S::Response, context: &Self::Context) -> Self::Share;

    /// The leader's inner error, made shareable.
    fn fail(&self, error: S::Error, context: &Self::Context) -> Self::Failure;

    /// The response for a request answered by a fresh stored entry before
    /// anything else happened, or `None` when the entry does not serve this
    /// request (the request then goes to the inner service on its own).
    fn respond_hit(
        &self,
        shared: &Self::Shared,
        answer: &Answer,
        request: &Req,
    ) -> Option<Self::Response>;

    /// [`respond_hit`](Self::respond_hit) with the lookup's own copy of the
    /// stored answer, which it may keep rather than clone once more (the hit
    /// path's one allocation for a `String` answer, say). Calls
    /// `respond_hit` by default.
    fn respond_hit_owned(
        &self,
        shared: Self::Shared,
        answer: &Answer,
        request: &Req,
    ) -> Option<Self::Response> {
        self.respond_hit(&shared, answer, request)
    }

    /// The response for a caller from a shared or stored answer, or `None`
    /// when it does not serve this request (the caller then calls the inner
    /// service on its own). `request` is `None` when the caller's request was
    /// consumed by its own call.
    fn respond(
        &self,
        shared: &Self::Shared,
        answer: &Answer,
        context: &Self::Context,
        request: Option<&Req>,
    ) -> Option<Self::Response>;

    /// The response (or error) for a caller whose flight failed.
    fn respond_failure(
        &self,
        failure: &Self::Failure,
        answer: &Answer,
        context: &Self::Context,
    ) -> Result<Self::Response, Self::Error>;

    /// The response (or error) for a caller whose flight panicked or who was
    /// refused a place in the queue.
    fn respond_rejected(
        &self,
        rejected: Rejected,
        context: &Self::Context,
    ) -> Result<Self::Response, Self::Error>;

    /// The inner service's error from `poll_ready`.
    fn map_error(&self, error: S::Error) -> Self::Error;

    /// The inner service's own result for a caller that was not shared
    /// (bypass, or an answer that did not serve it).
    fn pass_through(
        &self,
        result: Result<S::Response, S::Error>,
        answer: &Answer,
        context: &Self::Context,
    ) -> Result<Self::Response, Self::Error>;

    /// Whether an inner response to an invalidating request succeeded, so
    /// that its key is invalidated.
    fn confirms_invalidation(&self, response: &S::Response) -> bool {
        let _ = response;
        true
    }
}
