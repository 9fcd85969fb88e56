//! [`Caching`]: the service that collapses and caches.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::task::{Context, Poll};

use shared_calls_cache::{Lookup, Outcome};
use tower_service::Service;
use tracing::Instrument;

use crate::future::ResponseFuture;
use crate::layer::PolicyCache;
use crate::miss::{self, Parked};
use crate::policy::{Admission, Answer, Policy, Rejected, Reply, ServicePolicy};

/// The service made by [`CachingLayer`](crate::CachingLayer).
///
/// # Readiness
///
/// `poll_ready` is always ready and reserves nothing: a request that turns
/// out to be a hit never waits for the inner service's capacity (a
/// `ConcurrencyLimit` or `Buffer` inside the layer, a busy tonic `Channel`).
/// A request that calls the inner service (a leader, a bypass, a caller the
/// shared answer does not serve) readies its own clone of it inside its
/// response future, as tower's `Buffer` does; a request waiting for another's
/// call holds an unreadied clone, and so no capacity. The inner service's
/// readiness error reaches that request's caller through the policy.
///
/// # Concurrent calls on the same key
///
/// One inner call per key at a time: the first request of a key leads; the
/// requests that arrive while its call runs receive the policy's response
/// built from the same answer. The call belongs to no single request: if
/// the leader is dropped, the others still receive its answer, and by
/// default the call finishes and fills the cache even if every request has
/// gone.
///
/// # Panics
///
/// A panic in the inner service while it answers a shared call reaches every
/// waiting request as [`Rejected::Panicked`](crate::Rejected::Panicked) through the policy, and the key
/// is free again at once; nobody hangs.
pub struct Caching<S, F, P: Policy> {
    inner: S,
    key_fn: Arc<F>,
    policy: P,
    cache: PolicyCache<P>,
    hasher: RandomState,
}

impl<S: Clone, F, P: Policy> Clone for Caching<S, F, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key_fn: self.key_fn.clone(),
            policy: self.policy.clone(),
            cache: self.cache.clone(),
            hasher: self.hasher.clone(),
        }
    }
}

impl<S: fmt::Debug, F, P: Policy + fmt::Debug> fmt::Debug for Caching<S, F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caching")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, F, P: Policy> Caching<S, F, P> {
    pub(crate) fn new(inner: S, key_fn: Arc<F>, policy: P, cache: PolicyCache<P>) -> Self {
        Self {
            inner,
            key_fn,
            policy,
            cache,
            hasher: RandomState::new(),
        }
    }

    /// The cache this service shares with its layer's other services.
    pub fn cache(&self) -> &PolicyCache<P> {
        &self.cache
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<Req, S, F, K, P> Service<Req> for Caching<S, F, P>
where
    Req: Send + 'static,
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    F: Fn(&Req) -> Option<K>,
    K: Into<P::Key>,
    P: ServicePolicy<Req, S>,
    P::Response: Send + 'static,
    P::Error: Send + 'static,
{
    type Response = P::Response;
    type Error = P::Error;
    type Future = ResponseFuture<Req, S, P>;

    /// Always ready: a request that may be a hit reserves nothing of the
    /// inner service. Every inner call readies its own clone of the inner
    /// service inside its response future.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let admission = self.policy.admit(&request);
        let (key, invalidates, context) = match admission {
            Admission::Bypass(context) => (None, false, context),
            Admission::Share(context) => ((self.key_fn)(&request).map(Into::into), false, context),
            Admission::BypassAndInvalidate(context) => {
                ((self.key_fn)(&request).map(Into::into), true, context)
            }
        };
        // A request that takes only stored answers never calls: not even
        // one that would bypass the cache.
        let stored_only = self.policy.stored_only(&context);
        if stored_only && (invalidates || key.is_none()) {
            return self.not_stored(&context);
        }
        let Some(key) = key else {
            return self.bypass(request, context, Answer::bypass(), None);
        };
        if invalidates {
            return self.bypass(request, context, Answer::bypass(), Some(key));
        }
        let accepts = self.policy.accepts_stored(&context);
        let serves = |lookup: &Lookup<P::Shared>| {
            let answer = Answer::from_lookup(lookup, false);
            let taken = accepts
                .as_ref()
                .is_none_or(|accepts| accepts(lookup.value(), &lookup.timing()));
            taken
                && self
                    .policy
                    .serves(lookup.value(), &answer, Some(&request), &context)
        };
        let key = match self.cache.get_accepted(&key, serves) {
            Ok(hit) => return self.hit(hit, &context),
            // A request with its own limits on what it takes is answered by
            // the key's flight, which loads anew what it does not take.
            Err(_) if accepts.is_some() && !stored_only => key,
            Err(None) => key,
            // What is stored does not serve this request (another `Vary`
            // variant): its own variant's key, or the inner service alone.
            Err(Some(other)) => match self.policy.variant_key(&key, other.value(), &request) {
                Some(variant) => match self.cache.get_accepted(&variant, serves) {
                    Ok(hit) => return self.hit(hit, &context),
                    Err(_) => variant,
                },
                None if stored_only => return self.not_stored(&context),
                None => {
                    self.cache.recount(Outcome::Bypass, Outcome::Miss);
                    return self.bypass(request, context, Answer::of(Outcome::Miss), None);
                }
            },
        };
        if stored_only {
            return self.not_stored(&context);
        }
        let mut context = context;
        let request = self.policy.prepare(request, &mut context);
        let parked = Parked::new(self.inner.clone(), request);
        let span = self.span(&key);
        let miss = miss::run(
            self.cache.clone(),
            self.policy.clone(),
            key,
            parked,
            context,
            accepts,
        );
        ResponseFuture::shared(Box::pin(miss.instrument(span)))
    }
}

impl<S, F, P: Policy> Caching<S, F, P> {
    fn hit<Req>(&self, hit: Lookup<P::Shared>, context: &P::Context) -> ResponseFuture<Req, S, P>
    where
        S: Service<Req>,
        P: ServicePolicy<Req, S>,
    {
        let answer = Answer::from_lookup(&hit, false);
        let reply = Reply::Hit {
            shared: hit.into_value(),
            answer,
        };
        ResponseFuture::ready(self.policy.respond(reply, context))
    }

    /// The reply to a request that takes only a fresh stored answer, and
    /// found none.
    fn not_stored<Req>(&self, context: &P::Context) -> ResponseFuture<Req, S, P>
    where
        S: Service<Req>,
        P: ServicePolicy<Req, S>,
    {
        let reply = Reply::Rejected(Rejected::NotStored);
        ResponseFuture::ready(self.policy.respond(reply, context))
    }

    fn bypass<Req>(
        &self,
        request: Req,
        context: P::Context,
        answer: Answer,
        invalidate: Option<P::Key>,
    ) -> ResponseFuture<Req, S, P>
    where
        S: Service<Req> + Clone,
        P: ServicePolicy<Req, S>,
    {
        let invalidate = invalidate.map(|key| (self.cache.clone(), key));
        ResponseFuture::bypass(
            self.inner.clone(),
            request,
            self.policy.clone(),
            context,
            answer,
            invalidate,
        )
    }

    /// The span of a miss, with the key's hash when debug tracing is on.
    fn span(&self, key: &P::Key) -> tracing::Span {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let key_hash = self.hasher.hash_one(key);
            tracing::debug_span!("shared_calls", key_hash, outcome = tracing::field::Empty)
        } else {
            tracing::Span::none()
        }
    }
}
