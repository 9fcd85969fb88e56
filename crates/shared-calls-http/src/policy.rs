//! [`HttpPolicy`]: how HTTP requests are admitted, and responses shared,
//! stored and answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use shared_calls_tower::{Admission, Answer, Fetch, Outcome, Policy, Rejected, ServicePolicy};
use tower_service::Service;

use crate::body::{Buffered, SharedBody, buffer};
use crate::cache_control::{self, CacheControl, VaryError};
use crate::freshness::{self, BypassReason, Reason, RequestDecision, Rules, Storability};
use crate::grpc;
use crate::key::HttpKey;
use crate::shared::{Failure, HttpFailure, HttpShared, Shared, StoredResponse, TakeOnce};
use crate::status;

const X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The HTTP policy: RFC 9111 rules for a shared cache, bodies buffered up to
/// a limit with their trailers, `Cache-Status` on every answer.
///
/// Cloning is cheap (the settings are shared).
///
/// ```
/// use shared_calls_http::HttpPolicy;
/// use std::time::Duration;
///
/// let policy = HttpPolicy::new()
///     .max_body_size(256 * 1024)
///     .x_cache_status(true)
///     .map_rules(|rules| rules.default_ttl(Duration::from_secs(5)));
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rules: Rules::default(),
            max_body_size: 1024 * 1024,
            cache_status: Some(Arc::from("shared-calls")),
            x_cache_status: false,
            grpc: false,
        }
    }
}

impl HttpPolicy {
    /// The defaults: [`Rules::default`], 1 MiB bodies, `Cache-Status` named
    /// `shared-calls`, no `X-Cache-Status`, gRPC off.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// Changes the storability and freshness rules.
    pub fn map_rules(self, change: impl FnOnce(Rules) -> Rules) -> Self {
        self.with(|settings| settings.rules = change(settings.rules.clone()))
    }

    /// The largest body buffered to be shared or stored (1 MiB by default).
    /// A larger response still reaches its own client whole, streamed; it
    /// is not stored, and other waiters call on their own.
    pub fn max_body_size(self, bytes: usize) -> Self {
        self.with(|settings| settings.max_body_size = bytes)
    }

    /// Whether requests with `Authorization` or `Cookie` may be shared: set
    /// it only when your key function includes them. Off by default.
    pub fn credentials_in_key(self, in_key: bool) -> Self {
        self.map_rules(|rules| rules.credentials_in_key(in_key))
    }

    /// The identifier of this cache in `Cache-Status`, or `None` to send no
    /// `Cache-Status` (`shared-calls` by default).
    ///
    /// # Panics
    ///
    /// If the name is not a token (RFC 9110 §5.6.2).
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

    /// Whether to add nginx's `X-Cache-Status` (`HIT`, `MISS`, `UPDATING`,
    /// `STALE`, `BYPASS`). Off by default.
    pub fn x_cache_status(self, enabled: bool) -> Self {
        self.with(|settings| settings.x_cache_status = enabled)
    }

    /// Shares unary gRPC calls whose request message was buffered by
    /// [`BufferRequestLayer`](crate::BufferRequestLayer) (see
    /// [`grpc_key`](crate::grpc_key)); stores only answers with
    /// `grpc-status: 0`. Calls with `authorization` or `cookie` metadata
    /// bypass, as HTTP requests do, unless
    /// [`credentials_in_key`](Self::credentials_in_key). Off by default.
    pub fn grpc(self, enabled: bool) -> Self {
        self.with(|settings| settings.grpc = enabled)
    }

    /// Whether a request is a buffered unary gRPC call, and why it is not
    /// shared, if it is not: the one decision behind `admit` and `context`.
    fn classify<B>(&self, request: &Request<B>) -> (bool, Option<BypassReason>) {
        if self.settings.grpc && grpc::is_buffered_unary(request) {
            // Credentials (`authorization` metadata) bypass as they do in HTTP.
            let credentials =
                freshness::unkeyed_credentials(&self.settings.rules, request.headers());
            return (true, credentials.then_some(BypassReason::Credentials));
        }
        let rules = &self.settings.rules;
        match freshness::classify_request(rules, request.method(), request.headers()) {
            RequestDecision::Collapse => (false, None),
            RequestDecision::Bypass(reason) => (false, Some(reason)),
        }
    }

    /// Answers for a shared or stored response.
    fn answer<B: Body>(
        &self,
        stored: &StoredResponse,
        answer: &Answer,
        method: &Method,
    ) -> Response<SharedBody<B>> {
        let mut response = stored.to_response(method != Method::HEAD);
        let (age, cache_status) = if answer.outcome == Outcome::Hit {
            let headers = stored.hit_headers(answer.age(), answer.fresh_for(), self.id(), |age| {
                (
                    freshness::age_header_value(age),
                    self.status_entry(answer, None),
                )
            });
            (Some(headers.age), headers.cache_status)
        } else {
            let cached = answer.outcome.is_from_cache() || answer.outcome == Outcome::Collapsed;
            let age =
                cached.then(|| freshness::age_header_value(stored.initial_age + answer.age()));
            (age, self.status_entry(answer, None))
        };
        if let Some(age) = age {
            response.headers_mut().insert(http::header::AGE, age);
        }
        self.mark_with(&mut response, answer.outcome, cache_status);
        response
    }

    /// Which policy this is, to tell whose header values an entry remembers.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.settings) as usize
    }

    /// This cache's `Cache-Status` entry for an answer, if it sends one.
    fn status_entry(&self, answer: &Answer, detail: Option<&str>) -> Option<HeaderValue> {
        let name = self.settings.cache_status.as_ref()?;
        Some(status::cache_status(name, answer, detail))
    }

    /// Adds the outcome: extension, `Cache-Status`, `X-Cache-Status`.
    fn mark<B>(&self, response: &mut Response<B>, answer: &Answer, detail: Option<&str>) {
        self.mark_with(response, answer.outcome, self.status_entry(answer, detail));
    }

    fn mark_with<B>(
        &self,
        response: &mut Response<B>,
        outcome: Outcome,
        cache_status: Option<HeaderValue>,
    ) {
        response.extensions_mut().insert(outcome);
        if let Some(cache_status) = cache_status {
            response.headers_mut().append(CACHE_STATUS, cache_status);
        }
        if self.settings.x_cache_status {
            response
                .headers_mut()
                .insert(X_CACHE_STATUS, status::x_cache_status(outcome));
        }
    }

    /// A response made by this cache itself (502, 500, 503).
    fn synthesize<B: Body>(
        &self,
        status: StatusCode,
        answer: &Answer,
        detail: &str,
        method: &Method,
    ) -> Response<SharedBody<B>> {
        let body = if method == Method::HEAD {
            SharedBody::empty()
        } else {
            SharedBody::full(
                Bytes::from(status.canonical_reason().unwrap_or("error")),
                None,
            )
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        self.mark(&mut response, answer, Some(detail));
        response
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
#[derive(Debug)]
pub struct HttpContext {
    method: Method,
    /// Kept for shared requests: storability and `Vary` need them.
    headers: Option<HeaderMap>,
    bypass: Option<BypassReason>,
    /// A unary gRPC call: its `POST` is a read, stored like a `GET`.
    grpc: bool,
}

fn is_unsafe(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
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

    fn admit(&self, request: &Request<ReqB>) -> Admission {
        match self.classify(request) {
            (_, None) => Admission::Share,
            (false, Some(_)) if is_unsafe(request.method()) => Admission::BypassAndInvalidate,
            (_, Some(_)) => Admission::Bypass,
        }
    }

    fn context(&self, request: &Request<ReqB>) -> HttpContext {
        let (grpc, bypass) = self.classify(request);
        HttpContext {
            method: request.method().clone(),
            headers: bypass.is_none().then(|| request.headers().clone()),
            grpc: grpc && bypass.is_none(),
            bypass,
        }
    }

    fn prepare(&self, mut request: Request<ReqB>) -> Request<ReqB> {
        // The stored answer must have a body: a HEAD leader fetches the GET.
        if request.method() == Method::HEAD {
            *request.method_mut() = Method::GET;
        }
        request
    }

    fn share(&self, response: Response<ResB>, context: &HttpContext) -> Self::Share {
        let settings = self.settings.clone();
        let request_headers = context.headers.clone().unwrap_or_default();
        // A HEAD leader fetched the GET; a unary gRPC call reads like one.
        let method = if context.method == Method::HEAD || context.grpc {
            Method::GET
        } else {
            context.method.clone()
        };
        Box::pin(async move { share(&settings, response, &method, &request_headers).await })
    }

    fn fail(&self, error: S::Error, _: &HttpContext) -> HttpFailure {
        HttpFailure(Failure::Error(TakeOnce::new(error)))
    }

    fn respond_hit(
        &self,
        shared: &HttpShared,
        answer: &Answer,
        request: &Request<ReqB>,
    ) -> Option<Self::Response> {
        match &shared.0 {
            Shared::Complete(stored) if stored.serves(request.headers()) => {
                Some(self.answer(stored, answer, request.method()))
            }
            _ => None,
        }
    }

    fn respond(
        &self,
        shared: &HttpShared,
        answer: &Answer,
        context: &HttpContext,
        request: Option<&Request<ReqB>>,
    ) -> Option<Self::Response> {
        match &shared.0 {
            Shared::Complete(stored) => {
                let headers = request.map(Request::headers).or(context.headers.as_ref());
                if !answer.own_call && !headers.is_some_and(|headers| stored.serves(headers)) {
                    return None;
                }
                Some(self.answer(stored, answer, &context.method))
            }
            Shared::Unshared(response) if answer.own_call => {
                let mut response: Self::Response = response.take()?;
                if context.method == Method::HEAD {
                    // The leader asked with HEAD; its GET answer loses the body
                    // but keeps its length when known (RFC 9110 §8.6).
                    let (mut parts, body) = response.into_parts();
                    if !parts.headers.contains_key(CONTENT_LENGTH)
                        && let Some(length) = body.size_hint().exact()
                    {
                        parts
                            .headers
                            .insert(CONTENT_LENGTH, HeaderValue::from(length));
                    }
                    response = Response::from_parts(parts, SharedBody::empty());
                }
                self.mark(&mut response, answer, None);
                Some(response)
            }
            Shared::Unshared(_) => None,
        }
    }

    fn respond_failure(
        &self,
        failure: &HttpFailure,
        answer: &Answer,
        context: &HttpContext,
    ) -> Result<Self::Response, S::Error> {
        match &failure.0 {
            Failure::Status(stored) => Ok(self.answer(stored, answer, &context.method)),
            Failure::Error(taken) => {
                if answer.own_call {
                    if let Some(error) = taken.take::<S::Error>() {
                        return Err(error);
                    }
                    if let Some(mut response) = taken.take::<Self::Response>() {
                        self.mark(&mut response, answer, None);
                        return Ok(response);
                    }
                }
                Ok(self.synthesize(
                    StatusCode::BAD_GATEWAY,
                    answer,
                    "upstream-error",
                    &context.method,
                ))
            }
        }
    }

    fn respond_rejected(
        &self,
        rejected: Rejected,
        context: &HttpContext,
    ) -> Result<Self::Response, S::Error> {
        let answer = Answer::of(Outcome::Miss);
        Ok(match rejected {
            Rejected::Panicked(_) => self.synthesize(
                StatusCode::INTERNAL_SERVER_ERROR,
                &answer,
                "panicked",
                &context.method,
            ),
            Rejected::Overloaded => self.synthesize(
                StatusCode::SERVICE_UNAVAILABLE,
                &answer,
                "overloaded",
                &context.method,
            ),
            _ => self.synthesize(
                StatusCode::SERVICE_UNAVAILABLE,
                &answer,
                "unshareable",
                &context.method,
            ),
        })
    }

    fn map_error(&self, error: S::Error) -> S::Error {
        error
    }

    fn pass_through(
        &self,
        result: Result<Response<ResB>, S::Error>,
        answer: &Answer,
        context: &HttpContext,
    ) -> Result<Self::Response, S::Error> {
        let mut response = result?.map(SharedBody::streamed);
        self.mark(
            &mut response,
            answer,
            context.bypass.map(BypassReason::as_str),
        );
        Ok(response)
    }

    fn confirms_invalidation(&self, response: &Response<ResB>) -> bool {
        // RFC 9111 §4.4: a non-error status to an unsafe method.
        response.status().is_success() || response.status().is_redirection()
    }
}

/// Turns the leader's response into what its waiters receive and how the
/// cache stores it.
async fn share<B>(
    settings: &Settings,
    response: Response<B>,
    method: &Method,
    request_headers: &HeaderMap,
) -> Result<Fetch<HttpShared>, HttpFailure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
{
    let (parts, body) = response.into_parts();
    let storability = freshness::storability(
        &settings.rules,
        method,
        request_headers,
        parts.status,
        &parts.headers,
        SystemTime::now(),
    );
    // Answers meant for one user, or that set cookies, are not handed to
    // anyone else: the other waiters call on their own.
    let vary = match cache_control::vary(&parts.headers) {
        Ok(vary) => (!vary.is_empty()).then(|| vary.capture(request_headers)),
        Err(VaryError::Any | VaryError::TooMany | VaryError::Malformed) => None,
    };
    let failed = parts.status.is_server_error();
    let private = matches!(
        storability,
        Storability::DoNotStore(
            Reason::NoStore
                | Reason::Private
                | Reason::SetCookie
                | Reason::Authorization
                | Reason::Cookie
                | Reason::VaryAny
                | Reason::Vary
        )
    ) || freshness::for_its_client_only(&settings.rules, &parts.headers)
        // A failure is answered to its waiters without a `Vary` check.
        || (failed && vary.is_some());
    if private {
        let response = Response::from_parts(parts, SharedBody::streamed(body));
        return Ok(
            Fetch::value(HttpShared(Shared::Unshared(TakeOnce::new(response)))).do_not_store(),
        );
    }
    let collected = match buffer(body, settings.max_body_size).await {
        Buffered::Complete(collected) => collected,
        Buffered::TooLarge(body) | Buffered::Failed(body) => {
            let response = TakeOnce::new(Response::from_parts(parts, body));
            return match failed {
                true => Err(HttpFailure(Failure::Error(response))),
                false => Ok(Fetch::value(HttpShared(Shared::Unshared(response))).do_not_store()),
            };
        }
    };
    let grpc_failed = grpc::is_grpc_response(&parts.headers)
        && !grpc::succeeded(&parts.headers, collected.trailers());
    let initial_age = match &storability {
        Storability::Store(freshness) => freshness.initial_age,
        Storability::DoNotStore(_) => Duration::ZERO,
    };
    let says = Says::of(&settings.rules, parts.status, &parts.headers);
    let stored = Arc::new(StoredResponse::new(parts, collected, vary, initial_age));
    if failed || grpc_failed {
        return Err(HttpFailure(Failure::Status(stored)));
    }
    let fetch = Fetch::value(HttpShared(Shared::Complete(stored)));
    Ok(match storability {
        Storability::Store(freshness) => {
            // What the response (or the configured rules) does not say is
            // left to the cache: the layer's `ttl` and stale windows.
            let mut fetch = fetch;
            if says.ttl {
                fetch = fetch.ttl(freshness.ttl);
            }
            if says.stale_while_revalidate {
                fetch = fetch.stale_while_revalidate(freshness.stale_while_revalidate);
            }
            if says.stale_if_error {
                fetch = fetch.stale_if_error(freshness.stale_if_error);
            }
            fetch
        }
        Storability::DoNotStore(_) => fetch.do_not_store(),
    })
}

/// Which lifetimes a stored response sets itself, over the cache's settings.
#[derive(Debug, Clone, Copy)]
struct Says {
    ttl: bool,
    stale_while_revalidate: bool,
    stale_if_error: bool,
}

impl Says {
    fn of(rules: &Rules, status: StatusCode, headers: &HeaderMap) -> Self {
        let cc = CacheControl::from_headers_lenient(headers);
        let explicit = cc.s_maxage().is_some()
            || cc.max_age().is_some()
            || headers.contains_key(http::header::EXPIRES);
        // RFC 9111 §4.2.4: these forbid serving stale whatever the cache's settings.
        let no_stale = cc.must_revalidate()
            || cc.proxy_revalidate()
            || cc.s_maxage().is_some()
            || cc.no_cache();
        Self {
            ttl: explicit || rules.heuristic_ttl_configured(status),
            stale_while_revalidate: no_stale || cc.stale_while_revalidate().is_some(),
            stale_if_error: no_stale || cc.stale_if_error().is_some(),
        }
    }
}
