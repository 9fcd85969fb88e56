//! [`HttpPolicy`]: how HTTP requests are admitted, and responses shared,
//! stored and answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body::Body;
use shared_calls_tower::{
    Accepts, Admission, Answer, Fetch, Leader, Outcome, Policy, Reply, ServicePolicy,
};
use tower_service::Service;

use crate::admission::{self, BypassReason, RequestDecision};
use crate::body::SharedBody;
use crate::conditional::Conditions;
use crate::freshness::Rules;
use crate::grpc;
use crate::key::HttpKey;
use crate::location_targets::LocationTargets;
use crate::miss;
use crate::request_freshness::Limits;
use crate::respond::own_response;
use crate::revalidate;
use crate::shared::{Failure, HttpFailure, HttpShared, Shared, TakeOnce};

/// The HTTP policy: RFC 9111 rules for a shared cache, bodies buffered up to
/// a limit with their trailers, `Cache-Status` on every answer.
///
/// Cloning is cheap (the settings are shared).
///
/// ```
/// # mod shared_calls { pub use shared_calls_http as http_policy; }
/// use shared_calls::http_policy::HttpPolicy;
/// use std::time::Duration;
///
/// let policy = HttpPolicy::new()
///     .max_body_size(256 * 1024)
///     .x_cache_status(true)
///     .map_rules(|rules| rules.max_ttl(Duration::from_secs(3600)));
/// # let _ = policy;
/// ```
#[derive(Clone, Debug, Default)]
pub struct HttpPolicy {
    settings: Arc<Settings>,
}

#[derive(Clone, Debug)]
struct Settings {
    rules: Rules,
    max_body_size: usize,
    cache_status: Option<Arc<str>>,
    x_cache_status: bool,
    grpc: bool,
    keep_for_revalidation: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rules: Rules::default(),
            max_body_size: 1024 * 1024,
            cache_status: Some(Arc::from("shared-calls")),
            x_cache_status: false,
            grpc: false,
            keep_for_revalidation: DEFAULT_KEEP_FOR_REVALIDATION,
        }
    }
}

/// How long an expired answer with a validator is kept for revalidation,
/// by default.
pub const DEFAULT_KEEP_FOR_REVALIDATION: Duration = Duration::from_secs(10 * 60);

impl HttpPolicy {
    /// The defaults: [`Rules::default`], 1 MiB bodies, `Cache-Status` named
    /// `shared-calls`, no `X-Cache-Status`, gRPC off, expired answers with a
    /// validator kept 10 minutes for revalidation.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// Changes the storability and freshness rules.
    #[must_use]
    pub fn map_rules(self, change: impl FnOnce(Rules) -> Rules) -> Self {
        self.with(|settings| settings.rules = change(settings.rules.clone()))
    }

    /// The largest body buffered to be shared or stored (1 MiB by default).
    /// A larger response still reaches its own client whole, streamed; it
    /// is not stored, and other waiters call on their own.
    #[must_use]
    pub fn max_body_size(self, bytes: usize) -> Self {
        self.with(|settings| settings.max_body_size = bytes)
    }

    /// The identifier of this cache in `Cache-Status`, or `None` to send no
    /// `Cache-Status` (`shared-calls` by default).
    ///
    /// # Panics
    ///
    /// If the name is not a token (RFC 9110 §5.6.2).
    #[must_use]
    pub fn cache_status(self, name: Option<&str>) -> Self {
        if let Some(name) = name {
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
                "cache_status: {name:?} is not a token"
            );
        }
        self.with(|settings| settings.cache_status = name.map(Arc::from))
    }

    /// Whether to add nginx's `X-Cache-Status` (`HIT`, `MISS`, `REVALIDATED`, `UPDATING`,
    /// `STALE`, `BYPASS`). Off by default.
    #[must_use]
    pub fn x_cache_status(self, enabled: bool) -> Self {
        self.with(|settings| settings.x_cache_status = enabled)
    }

    /// Shares unary gRPC calls whose request message was buffered by
    /// [`BufferRequestLayer`](crate::BufferRequestLayer) (see
    /// [`grpc_key`](crate::grpc_key)); stores only answers with
    /// `grpc-status: 0`. Calls with `authorization` or `cookie` metadata
    /// bypass, as HTTP requests do, unless the key includes them
    /// ([`Rules::credentials_in_key`]). Off by default.
    #[must_use]
    pub fn grpc(self, enabled: bool) -> Self {
        self.with(|settings| settings.grpc = enabled)
    }

    /// How long an expired answer with a validator (`ETag`,
    /// `Last-Modified`) is kept after its freshness and stale windows end,
    /// never served, to be refreshed by a conditional request: the origin's
    /// `304` then freshens it without sending its body again (RFC 9111
    /// §4.3). [`DEFAULT_KEEP_FOR_REVALIDATION`] by default; zero turns
    /// revalidation off (expired answers are fetched whole).
    #[must_use]
    pub fn keep_for_revalidation(self, window: Duration) -> Self {
        self.with(|settings| settings.keep_for_revalidation = window)
    }

    pub(crate) fn revalidation_window(&self) -> Duration {
        self.settings.keep_for_revalidation
    }

    pub(crate) fn cache_status_name(&self) -> Option<&str> {
        self.settings.cache_status.as_deref()
    }

    pub(crate) fn sends_x_cache_status(&self) -> bool {
        self.settings.x_cache_status
    }

    pub(crate) fn rules(&self) -> &Rules {
        &self.settings.rules
    }

    pub(crate) fn buffer_limit(&self) -> usize {
        self.settings.max_body_size
    }

    /// What the policy keeps of a request, with whether it is shared: the
    /// one decision behind `admit`.
    fn classify<B>(&self, request: &Request<B>) -> HttpContext {
        let mut context = HttpContext {
            method: request.method().clone(),
            headers: None,
            bypass: None,
            grpc: false,
            conditions: None,
            only_if_cached: false,
            limits: None,
            location_targets: None,
            revalidating: None,
        };
        if self.settings.grpc && grpc::is_buffered_unary(request) {
            // Credentials (`authorization` metadata) bypass as they do in HTTP.
            let credentials =
                admission::unkeyed_credentials(&self.settings.rules, request.headers());
            context.bypass = credentials.then_some(BypassReason::Credentials);
            context.grpc = !credentials;
            return context;
        }
        let rules = &self.settings.rules;
        let reading = admission::read_request(rules, request.method(), request.headers());
        if let RequestDecision::Bypass(reason) = reading.decision {
            context.bypass = Some(reason);
        }
        context.conditions = reading.conditions.map(Arc::new);
        context.only_if_cached = reading.only_if_cached;
        context.limits = reading.limits.map(Box::new);
        context
    }
}

impl Policy for HttpPolicy {
    type Key = HttpKey;
    type Shared = HttpShared;
    type Failure = HttpFailure;

    fn weigh(&self, shared: &HttpShared) -> u32 {
        shared.weight()
    }

    fn weigh_key(&self, key: &HttpKey) -> u32 {
        u32::try_from(crate::owned::key_weight(key)).unwrap_or(u32::MAX)
    }
}

/// What the HTTP policy keeps of a request.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub(crate) method: Method,
    /// Kept for requests that miss: storability and `Vary` need them.
    /// Shared: the context is cloned into the miss's load and its sharing.
    pub(crate) headers: Option<Arc<HeaderMap>>,
    bypass: Option<BypassReason>,
    /// A unary gRPC call: its `POST` is a read, stored like a `GET`.
    pub(crate) grpc: bool,
    /// The client's `If-None-Match` / `If-Modified-Since`, answered by the
    /// cache and never sent on a shared call.
    pub(crate) conditions: Option<Arc<Conditions>>,
    /// `only-if-cached`: never calls the inner service.
    only_if_cached: bool,
    /// The request's own `max-age` / `min-fresh` / `max-stale`, honoured.
    limits: Option<Box<Limits>>,
    /// An unsafe request's URI, to find the targets its success invalidates.
    location_targets: Option<Box<LocationTargets>>,
    /// The kept answer this request's call asks the origin about, when it
    /// was made conditional.
    pub(crate) revalidating: Option<HttpShared>,
}

/// Any method but the safe ones (RFC 9110 §9.2.1), unknown ones included:
/// its success invalidates the target's stored answer (RFC 9111 §4.4).
fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl<ReqB, ResB, S> ServicePolicy<Request<ReqB>, S> for HttpPolicy
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Send,
{
    type Response = Response<SharedBody<ResB>>;
    type Error = S::Error;
    type Context = HttpContext;
    type Share =
        Pin<Box<dyn Future<Output = Result<Fetch<HttpShared>, HttpFailure>> + Send + 'static>>;

    fn admit(&self, request: &Request<ReqB>) -> Admission<HttpContext> {
        let mut context = self.classify(request);
        match context.bypass {
            None => Admission::Share(context),
            Some(BypassReason::Method) if is_unsafe(request.method()) => {
                context.location_targets = LocationTargets::of(request).map(Box::new);
                Admission::BypassAndInvalidate(context)
            }
            Some(_) => Admission::Bypass(context),
        }
    }

    fn prepare(&self, mut request: Request<ReqB>, context: &mut HttpContext) -> Request<ReqB> {
        // The call may be shared: no client's conditions decide what the
        // others get (each is evaluated against the full answer).
        if context.conditions.is_some() {
            Conditions::strip(request.headers_mut());
        }
        context.headers = Some(Arc::new(request.headers().clone()));
        // The stored answer must have a body: a HEAD fetches the GET.
        if request.method() == Method::HEAD {
            *request.method_mut() = Method::GET;
        }
        request
    }

    fn stored_only(&self, context: &HttpContext) -> bool {
        context.only_if_cached
    }

    fn accepts_stored(&self, context: &HttpContext) -> Option<Accepts<HttpShared>> {
        context.limits.as_deref().map(|limits| limits.accepts())
    }

    fn revalidate(
        &self,
        mut request: Request<ReqB>,
        stored: &HttpShared,
        context: &mut HttpContext,
    ) -> Request<ReqB> {
        let Shared::Complete(entry) = &stored.0 else {
            return request;
        };
        // Asked with the `Vary` values it was stored for, or not at all.
        if !self.revalidation_window().is_zero()
            && !context.grpc
            && entry.serves(request.headers())
            && revalidate::make_conditional(request.headers_mut(), entry)
        {
            context.revalidating = Some(stored.clone());
            // A `HEAD` needs no body: it asks as a `HEAD`, and what the
            // origin answers updates the stored `GET` (§4.3.5).
            if context.method == Method::HEAD {
                *request.method_mut() = Method::HEAD;
            }
        }
        request
    }

    fn share(
        &self,
        result: Result<Response<ResB>, S::Error>,
        context: &HttpContext,
        leader: Leader<Self::Response>,
    ) -> Self::Share {
        let (policy, context) = (self.clone(), context.clone());
        Box::pin(async move {
            match result {
                Ok(response) => miss::share(&policy, response, &context, leader).await,
                // A kept answer that could not be revalidated is not served
                // unless its stale-if-error window allows: a gateway timeout.
                Err(error) if context.revalidating.is_some() => {
                    Err(HttpFailure(Failure::Unrevalidated(TakeOnce::new(error))))
                }
                Err(error) => Err(HttpFailure(Failure::Error(TakeOnce::new(error)))),
            }
        })
    }

    fn serves(
        &self,
        shared: &HttpShared,
        answer: &Answer,
        request: Option<&Request<ReqB>>,
        context: &HttpContext,
    ) -> bool {
        match &shared.0 {
            // The response of this caller's own call went to it as soon as
            // its head came, with the fields the stored copy went without.
            Shared::Complete(stored)
                if stored.stripped
                    && answer.own_call
                    && matches!(
                        answer.outcome,
                        Outcome::Miss | Outcome::Pass | Outcome::LockTimeout
                    ) =>
            {
                false
            }
            // A stale answer of another variant must not stand in for a
            // failed call of this one.
            Shared::Complete(_) if answer.own_call && answer.outcome != Outcome::StaleIfError => {
                true
            }
            Shared::Complete(stored) => request
                .map(Request::headers)
                .or(context.headers.as_deref())
                .is_some_and(|headers| stored.serves(headers)),
            Shared::OwnClientOnly(response) => answer.own_call && !response.is_taken(),
        }
    }

    fn variant_key(
        &self,
        key: &HttpKey,
        shared: &HttpShared,
        request: &Request<ReqB>,
    ) -> Option<HttpKey> {
        let Shared::Complete(stored) = &shared.0 else {
            return None;
        };
        let values = stored.vary.as_ref()?.recapture(request.headers());
        Some(key.variant(stored.id, values))
    }

    fn respond(
        &self,
        reply: Reply<'_, Request<ReqB>, S, Self>,
        context: &HttpContext,
    ) -> Result<Self::Response, S::Error> {
        let method = &context.method;
        match reply {
            Reply::Hit { shared, answer } => Ok(self.respond_shared(&shared, &answer, context)),
            Reply::Shared { shared, answer } => Ok(self.respond_shared(shared, &answer, context)),
            Reply::Failed { failure, answer } => self.respond_failure(failure, &answer, method),
            Reply::Rejected(rejected) => Ok(self.respond_rejected(&rejected, method)),
            Reply::Own { result, answer } => {
                let response = result?.map(SharedBody::streamed);
                // A request that missed was sent as a `GET`, even for a `HEAD`.
                let mut response = match context.headers {
                    Some(_) => own_response(response, method),
                    None => response,
                };
                self.mark(
                    &mut response,
                    &answer,
                    context.bypass.map(BypassReason::as_str),
                );
                Ok(response)
            }
        }
    }

    fn confirms_invalidation(&self, response: &Response<ResB>) -> bool {
        // RFC 9111 §4.4: a non-error status to an unsafe method.
        response.status().is_success() || response.status().is_redirection()
    }

    fn also_invalidates(
        &self,
        key: &HttpKey,
        context: &HttpContext,
        response: &Response<ResB>,
    ) -> Vec<HttpKey> {
        match &context.location_targets {
            Some(targets) => targets.targets(key, response.headers()),
            None => Vec::new(),
        }
    }
}
