//! [`SharedCalls`]: the service that collapses and caches.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use shared_calls_cache::{LoadError, Outcome};
use tower_service::Service;
use tracing::Instrument;

use crate::future::ResponseFuture;
use crate::layer::PolicyCache;
use crate::policy::{Admission, Answer, Policy, Rejected, ServicePolicy};

/// The service made by [`SharedCallsLayer`](crate::SharedCallsLayer).
///
/// # Readiness
///
/// `poll_ready` delegates to the inner service. `call` answers a fresh hit
/// without touching the inner service, which then stays ready for the next
/// request. Any other request takes the ready inner service (leaving a clone
/// in its place, as tower requires) and uses it for its own inner call, if
/// it makes one: a request that shares another's call returns it unused.
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
/// waiting request as [`Rejected::Panicked`] through the policy, and the key
/// is free again at once; nobody hangs.
pub struct SharedCalls<S, F, P: Policy> {
    inner: S,
    key_fn: Arc<F>,
    policy: P,
    cache: PolicyCache<P>,
    hasher: RandomState,
}

impl<S: Clone, F, P: Policy> Clone for SharedCalls<S, F, P> {
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

impl<S: fmt::Debug, F, P: Policy + fmt::Debug> fmt::Debug for SharedCalls<S, F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCalls")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, F, P: Policy> SharedCalls<S, F, P> {
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

impl<Req, S, F, K, P> Service<Req> for SharedCalls<S, F, P>
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
    P::Context: Sync,
{
    type Response = P::Response;
    type Error = P::Error;
    type Future = ResponseFuture<Req, S, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| self.policy.map_error(error))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let admission = self.policy.admit(&request);
        let key = match admission {
            Admission::Bypass => None,
            Admission::Share | Admission::BypassAndInvalidate => {
                (self.key_fn)(&request).map(Into::into)
            }
        };
        let Some(key) = key else {
            return self.bypass(request, Answer::bypass(), None);
        };
        if admission == Admission::BypassAndInvalidate {
            return self.bypass(request, Answer::bypass(), Some(key));
        }
        if let Some(lookup) = self.cache.get(&key) {
            let answer = Answer::from_lookup(&lookup, false);
            return match self
                .policy
                .respond_hit_owned(lookup.into_value(), &answer, &request)
            {
                Some(response) => ResponseFuture::ready(Ok(response)),
                // The stored answer does not serve this request (a variant).
                None => self.bypass(
                    request,
                    Answer {
                        outcome: Outcome::Miss,
                        ..answer
                    },
                    None,
                ),
            };
        }
        self.share(request, key)
    }
}

impl<S, F, P: Policy> SharedCalls<S, F, P> {
    /// The ready inner service, leaving a clone in its place.
    fn take_ready<Req>(&mut self) -> S
    where
        S: Service<Req> + Clone,
    {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }

    fn bypass<Req>(
        &mut self,
        request: Req,
        answer: Answer,
        invalidate: Option<P::Key>,
    ) -> ResponseFuture<Req, S, P>
    where
        S: Service<Req> + Clone,
        P: ServicePolicy<Req, S>,
    {
        let context = self.policy.context(&request);
        let future = self.take_ready().call(request);
        let invalidate = invalidate.map(|key| (self.cache.clone(), key));
        ResponseFuture::bypass(future, self.policy.clone(), context, answer, invalidate)
    }

    /// A miss: lead or join the key's flight.
    fn share<Req>(&mut self, request: Req, key: P::Key) -> ResponseFuture<Req, S, P>
    where
        Req: Send + 'static,
        S: Service<Req> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Response: Send + 'static,
        S::Error: Send + 'static,
        P: ServicePolicy<Req, S>,
        P::Response: Send + 'static,
        P::Error: Send + 'static,
        P::Context: Sync,
    {
        let span = if tracing::enabled!(tracing::Level::DEBUG) {
            let key_hash = self.hasher.hash_one(&key);
            tracing::debug_span!("shared_calls", key_hash, outcome = tracing::field::Empty)
        } else {
            tracing::Span::none()
        };
        let context = Arc::new(self.policy.context(&request));
        // This request and the ready service: taken by its own load if it
        // leads; returned unused if it shares another's answer.
        let own = Arc::new(Mutex::new(Some((self.take_ready(), request))));
        let load = {
            let (own, policy, context) = (own.clone(), self.policy.clone(), context.clone());
            move || {
                let taken = own.lock().unwrap_or_else(PoisonError::into_inner).take();
                async move {
                    // The caller takes its request back only after its load
                    // had the chance to run, or leaves it for a refresh.
                    let (mut service, request) =
                        taken.expect("a request is sent by its own load at most once");
                    match service.call(policy.prepare(request)).await {
                        Ok(response) => policy.share(response, &context).await,
                        Err(error) => Err(policy.fail(error, &context)),
                    }
                }
            }
        };
        let (cache, policy) = (self.cache.clone(), self.policy.clone());
        let shared = async move {
            let result = cache.get_or_load(&key, load).await;
            // A stale answer leaves the request to the background refresh.
            let stale = matches!(&result, Ok(lookup) if lookup.outcome() == Outcome::Stale);
            let unused = if stale {
                None
            } else {
                own.lock().unwrap_or_else(PoisonError::into_inner).take()
            };
            let own_call = unused.is_none() && !stale;
            match result {
                Ok(lookup) => {
                    let answer = Answer::from_lookup(&lookup, own_call);
                    tracing::Span::current().record("outcome", answer.outcome.as_str());
                    let request = unused.as_ref().map(|(_, request)| request);
                    match policy.respond(lookup.value(), &answer, &context, request) {
                        Some(response) => Ok(response),
                        // The shared answer does not serve this request: call alone.
                        None => match unused {
                            Some((mut service, request)) => {
                                let answer = Answer {
                                    outcome: Outcome::Miss,
                                    stored: false,
                                    own_call: true,
                                    ..answer
                                };
                                policy.pass_through(service.call(request).await, &answer, &context)
                            }
                            None => policy.respond_rejected(Rejected::Unshareable, &context),
                        },
                    }
                }
                Err(LoadError::Load(failure)) => {
                    let outcome = if own_call {
                        Outcome::Miss
                    } else {
                        Outcome::Collapsed
                    };
                    let answer = Answer {
                        outcome,
                        own_call,
                        ..Answer::bypass()
                    };
                    policy.respond_failure(&failure, &answer, &context)
                }
                Err(LoadError::Panicked(message)) => {
                    policy.respond_rejected(Rejected::Panicked(message), &context)
                }
                Err(LoadError::Overloaded) => {
                    policy.respond_rejected(Rejected::Overloaded, &context)
                }
                Err(_) => policy.respond_rejected(Rejected::Unshareable, &context),
            }
        };
        ResponseFuture::shared(Box::pin(shared.instrument(span)))
    }
}
