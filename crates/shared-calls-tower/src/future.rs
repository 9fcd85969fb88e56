//! [`ResponseFuture`]: the future of a [`Caching`](crate::Caching) call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::layer::PolicyCache;
use crate::policy::{Answer, Reply, ServicePolicy};

type SharedFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send + 'static>>;

pin_project! {
    /// The response future of [`Caching`](crate::Caching).
    pub struct ResponseFuture<Req, S, P>
    where
        S: Service<Req>,
        P: ServicePolicy<Req, S>,
    {
        #[pin]
        state: State<Req, S, P>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Req, S, P>
    where
        S: Service<Req>,
        P: ServicePolicy<Req, S>,
    {
        /// A fresh hit, answered in `call`.
        Ready { response: Option<Result<P::Response, P::Error>> },
        /// The inner service's own call, passed through.
        Bypass {
            #[pin]
            call: InnerCall<Req, S>,
            policy: P,
            context: P::Context,
            answer: Answer,
            invalidate: Option<(PolicyCache<P>, P::Key)>,
        },
        /// Through the cache and the key's flight. The boxed future is only
        /// `Send`; it is reached through `&mut` alone, and a std mutex that
        /// is never locked makes that `Sync` without unsafe code (what the
        /// unstable `std::sync::Exclusive` does).
        Shared { future: Mutex<SharedFuture<P::Response, P::Error>> },
    }
}

pin_project! {
    /// A call of the inner service that readies its own clone first, so
    /// that nothing holds the inner service's capacity before it calls.
    #[project = InnerCallProj]
    enum InnerCall<Req, S>
    where
        S: Service<Req>,
    {
        Readying { service: S, request: Option<Req> },
        Calling {
            #[pin]
            future: S::Future,
        },
    }
}

impl<Req, S: Service<Req>> Future for InnerCall<Req, S> {
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                InnerCallProj::Readying { service, request } => {
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        return Poll::Ready(Err(error));
                    }
                    let Some(request) = request.take() else {
                        panic!("`ResponseFuture` polled after completion");
                    };
                    let future = service.call(request);
                    self.set(InnerCall::Calling { future });
                }
                InnerCallProj::Calling { future } => return future.poll(cx),
            }
        }
    }
}

impl<Req, S, P> ResponseFuture<Req, S, P>
where
    S: Service<Req>,
    P: ServicePolicy<Req, S>,
{
    pub(crate) fn ready(response: Result<P::Response, P::Error>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn bypass(
        service: S,
        request: Req,
        policy: P,
        context: P::Context,
        answer: Answer,
        invalidate: Option<(PolicyCache<P>, P::Key)>,
    ) -> Self {
        Self {
            state: State::Bypass {
                call: InnerCall::Readying {
                    service,
                    request: Some(request),
                },
                policy,
                context,
                answer,
                invalidate,
            },
        }
    }

    pub(crate) fn shared(future: SharedFuture<P::Response, P::Error>) -> Self {
        Self {
            state: State::Shared {
                future: Mutex::new(future),
            },
        }
    }
}

impl<Req, S, P> Future for ResponseFuture<Req, S, P>
where
    S: Service<Req>,
    P: ServicePolicy<Req, S>,
{
    type Output = Result<P::Response, P::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Ready { response } => Poll::Ready(
                response
                    .take()
                    .expect("`ResponseFuture` polled after completion"),
            ),
            StateProj::Bypass {
                call,
                policy,
                context,
                answer,
                invalidate,
            } => {
                let result = ready!(call.poll(cx));
                if let (Ok(response), Some((cache, key))) = (&result, invalidate.take())
                    && policy.confirms_invalidation(response)
                {
                    for other in policy.also_invalidates(&key, context, response) {
                        cache.invalidate(&other);
                    }
                    cache.invalidate(&key);
                }
                let answer = *answer;
                Poll::Ready(policy.respond(Reply::Own { result, answer }, context))
            }
            StateProj::Shared { future } => future
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
                .poll(cx),
        }
    }
}

impl<Req, S, P> fmt::Debug for ResponseFuture<Req, S, P>
where
    S: Service<Req>,
    P: ServicePolicy<Req, S>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "ready",
            State::Bypass { .. } => "bypass",
            State::Shared { .. } => "shared",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
