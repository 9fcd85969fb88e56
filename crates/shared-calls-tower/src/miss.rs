//! A miss: lead or join the key's flight, and answer from what it brings.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use shared_calls_cache::{Accepts, Fetch, LoadError, Outcome};
use tokio::sync::oneshot;
use tower_service::Service;

use crate::layer::PolicyCache;
use crate::policy::{Answer, Leader, Policy, Rejected, Reply, ServicePolicy};

/// A request and an unreadied clone of the inner service, to call it with.
pub(crate) struct OwnCall<S, Req> {
    service: S,
    request: Req,
}

impl<S: Service<Req>, Req> OwnCall<S, Req> {
    /// Readies the service (inside the caller's future, so that nothing
    /// holds inner capacity before it calls) and calls it.
    pub(crate) async fn send(self) -> Result<S::Response, S::Error> {
        let Self {
            mut service,
            request,
        } = self;
        poll_fn(|cx| service.poll_ready(cx)).await?;
        service.call(request).await
    }
}

/// A miss's own call, parked until the caller's load takes it to lead the
/// flight, or the caller takes it back to call alone (an answer that did not
/// serve it); a caller that shares another's call leaves it unused.
pub(crate) struct Parked<S, Req> {
    slot: Arc<Mutex<Option<OwnCall<S, Req>>>>,
}

impl<S, Req> Clone for Parked<S, Req> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
        }
    }
}

impl<S, Req> Parked<S, Req> {
    pub(crate) fn new(service: S, request: Req) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Some(OwnCall { service, request }))),
        }
    }

    /// The call, unless it was taken already.
    fn take(&self) -> Option<OwnCall<S, Req>> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The answer to a miss.
pub(crate) async fn run<Req, S, P>(
    cache: PolicyCache<P>,
    policy: P,
    key: P::Key,
    parked: Parked<S, Req>,
    context: P::Context,
    accepts: Option<Accepts<P::Shared>>,
) -> Result<P::Response, P::Error>
where
    Req: Send + 'static,
    S: Service<Req> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    P: ServicePolicy<Req, S>,
    P::Response: Send + 'static,
{
    let accepts = accepts.as_ref();
    let (own, shared, counted) =
        match flight(&cache, &policy, &key, parked, &context, accepts).await {
            Flown::Answered(result) => return result,
            Flown::NotServed(own, shared, counted) => (own, shared, counted),
        };
    // Another variant's answer: collapse with the requests of this one. The
    // statistics count only the lookup whose answer the caller receives.
    cache.recount(counted, Outcome::Bypass);
    let own = match policy.variant_key(&key, &shared, &own.request) {
        Some(variant) if variant != key => {
            let parked = Parked::new(own.service, own.request);
            match flight(&cache, &policy, &variant, parked, &context, accepts).await {
                Flown::Answered(result) => return result,
                Flown::NotServed(own, _, counted) => {
                    cache.recount(counted, Outcome::Bypass);
                    own
                }
            }
        }
        _ => own,
    };
    cache.recount(Outcome::Bypass, Outcome::Miss);
    let result = own.send().await;
    let answer = Answer::of(Outcome::Miss);
    policy.respond(Reply::Own { result, answer }, &context)
}

/// How a flight answered a caller.
enum Flown<S, Req, P: Policy, R> {
    /// With the caller's response.
    Answered(R),
    /// With an answer that does not serve the caller, who still has its own
    /// request to send, and the outcome its lookup was counted as.
    NotServed(OwnCall<S, Req>, P::Shared, Outcome),
}

/// Leads or joins the flight of `key`, and answers from what it brings.
async fn flight<Req, S, P>(
    cache: &PolicyCache<P>,
    policy: &P,
    key: &P::Key,
    parked: Parked<S, Req>,
    context: &P::Context,
    accepts: Option<&Accepts<P::Shared>>,
) -> Flown<S, Req, P, Result<P::Response, P::Error>>
where
    Req: Send + 'static,
    S: Service<Req> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    P: ServicePolicy<Req, S>,
    P::Response: Send + 'static,
{
    let (leader, early) = Leader::channel();
    let (own, load_policy, load_context) = (parked.clone(), policy.clone(), context.clone());
    // A closure made here, not returned by a function, so that the load's
    // future is a type of its own inside the flight's, not a box of its own.
    let load = move |outcome, kept| own_load(own, load_policy, load_context, leader, outcome, kept);
    let lookup = cache.get_or_revalidate(key, accepts.cloned(), load);
    let ((result, outcome), early) = match first(lookup, early).await {
        First::Early((response, outcome)) => {
            tracing::Span::current().record("outcome", outcome.as_str());
            return Flown::Answered(Ok(response));
        }
        First::Done(done, early) => (done, early),
    };
    tracing::Span::current().record("outcome", outcome.as_str());
    // A stale answer leaves the request to the background refresh.
    let stale = matches!(&result, Ok(lookup) if lookup.outcome() == Outcome::Stale);
    let unused = if stale { None } else { parked.take() };
    let own_call = unused.is_none() && !stale;
    let (lookup, early) = match (result, early) {
        (Ok(lookup), early) => (lookup, early),
        // The leader's own response went out before its call failed.
        (Err(_), Some((response, _))) => return Flown::Answered(Ok(response)),
        (Err(error), None) => {
            let reply = respond_error(policy, error, outcome, own_call, context);
            return Flown::Answered(reply);
        }
    };
    let answer = Answer::from_lookup(&lookup, own_call);
    let request = unused.as_ref().map(|own| &own.request);
    if policy.serves(lookup.value(), &answer, request, context) {
        let shared = lookup.value();
        return Flown::Answered(policy.respond(Reply::Shared { shared, answer }, context));
    }
    // The leader's own response went out before the answer was complete,
    // and the complete answer is not for sharing.
    if let Some((response, _)) = early {
        return Flown::Answered(Ok(response));
    }
    match unused {
        Some(own) => Flown::NotServed(own, lookup.into_value(), outcome),
        None => {
            let rejected = Reply::Rejected(Rejected::Unshareable);
            Flown::Answered(policy.respond(rejected, context))
        }
    }
}

/// The load of a caller's own call, started with the outcome its result
/// will have and the kept answer it refreshes, if any: the parked request,
/// sent (made to revalidate that answer), and its result made shareable by
/// the policy.
fn own_load<Req, S, P>(
    parked: Parked<S, Req>,
    policy: P,
    context: P::Context,
    leader: Leader<P::Response>,
    outcome: Outcome,
    kept: Option<P::Shared>,
) -> impl Future<Output = Result<Fetch<P::Shared>, P::Failure>> + Send + 'static
where
    Req: Send + 'static,
    S: Service<Req> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    P: ServicePolicy<Req, S>,
    P::Response: Send + 'static,
{
    // The caller takes its request back only after its load had the
    // chance to run, or leaves it for a background refresh.
    let own = parked.take();
    let leader = leader.with_outcome(outcome);
    async move {
        let mut own = own.expect("a request is sent by its own load at most once");
        let mut context = context;
        if let Some(stored) = &kept {
            own.request = policy.revalidate(own.request, stored, &mut context);
        }
        let result = own.send().await;
        policy.share(result, &context, leader).await
    }
}

/// The reply to a flight that brought no answer.
fn respond_error<Req, S, P>(
    policy: &P,
    error: LoadError<P::Failure>,
    outcome: Outcome,
    own_call: bool,
    context: &P::Context,
) -> Result<P::Response, P::Error>
where
    S: Service<Req>,
    P: ServicePolicy<Req, S>,
{
    let reply = match &error {
        LoadError::Load(failure) => Reply::Failed {
            failure,
            answer: Answer {
                outcome,
                own_call,
                ..Answer::bypass()
            },
        },
        LoadError::Panicked(message) => Reply::Rejected(Rejected::Panicked(message.clone())),
        LoadError::Overloaded => Reply::Rejected(Rejected::Overloaded),
        _ => Reply::Rejected(Rejected::Unshareable),
    };
    policy.respond(reply, context)
}

/// Whichever comes first: the leader's early response, or the lookup's end
/// (with the early response, if it came meanwhile).
enum First<T, R> {
    Early(R),
    Done(T, Option<R>),
}

async fn first<T, R>(lookup: impl Future<Output = T>, early: oneshot::Receiver<R>) -> First<T, R> {
    let mut lookup = pin!(lookup);
    let mut early = Some(early);
    poll_fn(|cx| {
        if let Poll::Ready(done) = lookup.as_mut().poll(cx) {
            let response = early.as_mut().and_then(|early| early.try_recv().ok());
            return Poll::Ready(First::Done(done, response));
        }
        if let Some(receiver) = early.as_mut() {
            match Pin::new(receiver).poll(cx) {
                Poll::Ready(Ok(response)) => return Poll::Ready(First::Early(response)),
                // No early response for this caller: wait for the lookup.
                Poll::Ready(Err(_)) => early = None,
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}
