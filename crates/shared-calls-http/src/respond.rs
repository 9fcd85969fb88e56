//! How every kind of answer becomes the HTTP response its caller receives,
//! with what it says about itself: the [`Outcome`] extension, `Age`,
//! `Cache-Status` and `X-Cache-Status`.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body::Body;
use shared_calls_tower::{Answer, Outcome, Rejected};

use crate::body::SharedBody;
use crate::freshness;
use crate::policy::HttpPolicy;
use crate::shared::{Failure, HttpFailure, HttpShared, Shared, StoredResponse};
use crate::status;

const X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

impl HttpPolicy {
    /// The response for a stored or shared answer that serves its caller.
    pub(crate) fn respond_shared<B: Body<Data = Bytes> + Send + 'static>(
        &self,
        shared: &HttpShared,
        answer: &Answer,
        method: &Method,
    ) -> Response<SharedBody<B>> {
        match &shared.0 {
            Shared::Complete(stored) => self.answer(stored, answer, method),
            Shared::OwnClientOnly(response) => match response.take::<Response<SharedBody<B>>>() {
                Some(response) => {
                    let mut response = own_response(response, method);
                    self.mark(&mut response, answer, None);
                    response
                }
                None => self.respond_rejected(&Rejected::Unshareable, method),
            },
        }
    }

    /// The response (or error) for a caller whose flight failed.
    pub(crate) fn respond_failure<B, E>(
        &self,
        failure: &HttpFailure,
        answer: &Answer,
        method: &Method,
    ) -> Result<Response<SharedBody<B>>, E>
    where
        B: Body<Data = Bytes> + Send + 'static,
        E: Send + 'static,
    {
        match &failure.0 {
            Failure::Status(stored) => return Ok(self.answer(stored, answer, method)),
            Failure::Error(taken) if answer.own_call => {
                if let Some(error) = taken.take::<E>() {
                    return Err(error);
                }
                if let Some(response) = taken.take::<Response<SharedBody<B>>>() {
                    let mut response = own_response(response, method);
                    self.mark(&mut response, answer, None);
                    return Ok(response);
                }
            }
            Failure::Error(_) | Failure::Broken => {}
        }
        let status = StatusCode::BAD_GATEWAY;
        Ok(self.synthesize(status, answer, "upstream-error", method))
    }

    /// The response for a caller whose flight panicked, or who was refused
    /// a place in the queue or an answer.
    pub(crate) fn respond_rejected<B: Body>(
        &self,
        rejected: &Rejected,
        method: &Method,
    ) -> Response<SharedBody<B>> {
        let answer = Answer::of(Outcome::Miss);
        let (status, detail) = match rejected {
            Rejected::Panicked(_) => (StatusCode::INTERNAL_SERVER_ERROR, "panicked"),
            Rejected::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "unshareable"),
        };
        self.synthesize(status, &answer, detail, method)
    }

    /// The leader's own response, sent as soon as its head is known.
    pub(crate) fn leader_response<B: Body<Data = Bytes>>(
        &self,
        response: Response<SharedBody<B>>,
        answer: &Answer,
        method: &Method,
    ) -> Response<SharedBody<B>> {
        let mut response = own_response(response, method);
        self.mark(&mut response, answer, None);
        response
    }

    /// Answers for a shared or stored response.
    fn answer<B: Body>(
        &self,
        stored: &StoredResponse,
        answer: &Answer,
        method: &Method,
    ) -> Response<SharedBody<B>> {
        let mut response = stored.to_response(method != Method::HEAD);
        let (age, cache_status) = if answer.outcome == Outcome::Hit && !answer.from_second_tier() {
            let headers = stored.hit_headers(answer.age(), answer.fresh_for(), self.id(), |age| {
                (
                    freshness::age_header_value(age),
                    self.status_entry(answer, None),
                )
            });
            (Some(headers.age), headers.cache_status)
        } else {
            // The origin's `Age` stands on an answer of this caller's own
            // call; one that was kept or shared has aged since.
            let cached = answer.outcome.is_from_cache() || answer.outcome == Outcome::Collapsed;
            let age = match cached {
                true => Some(stored.initial_age + answer.age()),
                // Whole seconds: the time its own body took is not an `Age`.
                false => (stored.initial_age.as_secs() > 0).then_some(stored.initial_age),
            };
            let age = age.map(freshness::age_header_value);
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
        self.settings_id()
    }

    /// This cache's `Cache-Status` entry for an answer, if it sends one.
    fn status_entry(&self, answer: &Answer, detail: Option<&str>) -> Option<HeaderValue> {
        let name = self.cache_status_name()?;
        Some(status::cache_status(name, answer, detail))
    }

    /// Adds the outcome: extension, `Cache-Status`, `X-Cache-Status`.
    pub(crate) fn mark<B>(
        &self,
        response: &mut Response<B>,
        answer: &Answer,
        detail: Option<&str>,
    ) {
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
        if self.sends_x_cache_status() {
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

/// A response of the caller's own call: a `HEAD` caller's call fetched the
/// `GET`, whose answer loses its body but keeps its length when known
/// (RFC 9110 §8.6).
pub(crate) fn own_response<B: Body<Data = Bytes>>(
    response: Response<SharedBody<B>>,
    method: &Method,
) -> Response<SharedBody<B>> {
    if method != Method::HEAD {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    if !parts.headers.contains_key(CONTENT_LENGTH)
        && let Some(length) = body.size_hint().exact()
    {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    Response::from_parts(parts, SharedBody::empty())
}
