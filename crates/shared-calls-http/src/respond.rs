//! How every kind of answer becomes the HTTP response its caller receives,
//! with what it says about itself: the [`Outcome`] extension, `Age`,
//! `Cache-Status` and `X-Cache-Status`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::Body;
use shared_calls_tower::{Answer, Outcome, Rejected};

use crate::body::SharedBody;
use crate::conditional::{self, Conditions};
use crate::freshness;
use crate::hit_head::{self, HitHead};
use crate::policy::{HttpContext, HttpPolicy};
use crate::shared::{Failure, HttpFailure, HttpShared, Shared, StoredResponse};
use crate::status;

const X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

impl HttpPolicy {
    /// The response for a stored or shared answer that serves its caller.
    /// A client's own conditions are evaluated against it.
    pub(crate) fn respond_shared<B: Body<Data = Bytes> + Send + 'static>(
        &self,
        shared: &HttpShared,
        answer: &Answer,
        context: &HttpContext,
    ) -> Response<SharedBody<B>> {
        let method = &context.method;
        match &shared.0 {
            Shared::Complete(stored) => {
                let conditions = context.conditions.as_deref();
                self.answer(stored, answer, method, conditions)
            }
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
            Failure::Status(stored) => return Ok(self.answer(stored, answer, method, None)),
            Failure::Error(taken) | Failure::Unrevalidated(taken) if answer.own_call => {
                if let Some(error) = taken.take::<E>() {
                    return Err(error);
                }
                if let Some(response) = taken.take::<Response<SharedBody<B>>>() {
                    let mut response = own_response(response, method);
                    self.mark(&mut response, answer, None);
                    return Ok(response);
                }
            }
            Failure::Unrevalidated(_) => {
                let status = StatusCode::GATEWAY_TIMEOUT;
                return Ok(self.synthesize(status, answer, "revalidation-failed", method));
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
            Rejected::NotStored => return self.only_if_cached_miss(method),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "unshareable"),
        };
        self.synthesize(status, &answer, detail, method)
    }

    /// The `504` of an `only-if-cached` request that nothing stored serves
    /// (RFC 9111 §5.2.1.7): neither a hit nor forwarded.
    fn only_if_cached_miss<B: Body>(&self, method: &Method) -> Response<SharedBody<B>> {
        let mut response = self.synthesize(
            StatusCode::GATEWAY_TIMEOUT,
            &Answer::of(Outcome::Miss),
            "only-if-cached",
            method,
        );
        if let Some(name) = self.cache_status_name() {
            let entry = status::not_stored(name, "only-if-cached");
            response.headers_mut().insert(CACHE_STATUS, entry);
        }
        response
    }

    /// The leader's own response, sent as soon as its head is known: a
    /// `304` if its client's conditions say it has that answer already (the
    /// body is still buffered for the others and the store).
    pub(crate) fn leader_response<B: Body<Data = Bytes>>(
        &self,
        response: Response<SharedBody<B>>,
        answer: &Answer,
        context: &HttpContext,
    ) -> Response<SharedBody<B>> {
        let not_modified = context.conditions.as_deref().is_some_and(|conditions| {
            conditions.not_modified(response.status(), response.headers(), SystemTime::now())
        });
        let mut response = match not_modified {
            true => {
                let mut not_modified = not_modified_response(response.headers());
                if let Some(age) = response.headers().get(AGE) {
                    not_modified.headers_mut().insert(AGE, age.clone());
                }
                not_modified
            }
            false => own_response(response, &context.method),
        };
        self.mark(&mut response, answer, None);
        response
    }

    /// Answers for a shared or stored response: a `304` when `conditions`
    /// say the client has it already.
    fn answer<B: Body>(
        &self,
        stored: &Arc<StoredResponse>,
        answer: &Answer,
        method: &Method,
        conditions: Option<&Conditions>,
    ) -> Response<SharedBody<B>> {
        // Only a conditional request needs the stored lines as a map.
        let not_modified = conditions.and_then(|conditions| {
            let received = SystemTime::now()
                .checked_sub(answer.age())
                .unwrap_or(UNIX_EPOCH);
            let headers = stored.headers();
            conditions
                .not_modified(stored.status, &headers, received)
                .then_some(headers)
        });
        if answer.outcome == Outcome::Hit && !answer.from_second_tier() {
            return self.hit(stored, answer, method, not_modified);
        }
        let mut response = match not_modified {
            Some(headers) => not_modified_response(&headers),
            None => stored.to_response(method != Method::HEAD),
        };
        // Kept, and confirmed by the origin's `304` for this caller.
        let revalidated = stored.revalidated && !answer.outcome.is_from_cache();
        // The origin's `Age` stands on an answer of this caller's own call;
        // one that was kept or shared has aged since.
        let cached = answer.outcome.is_from_cache() || answer.outcome == Outcome::Collapsed;
        let age = match cached {
            true => Some(stored.initial_age + answer.age()),
            // Whole seconds: the time its own body took is not an `Age`.
            false => (stored.initial_age.as_secs() > 0).then_some(stored.initial_age),
        };
        if let Some(age) = age {
            let age = freshness::age_header_value(age);
            response.headers_mut().insert(AGE, age);
        }
        let cache_status = match revalidated {
            true => self
                .cache_status_name()
                .map(|name| status::revalidated(name, answer)),
            false => self.status_entry(answer, None),
        };
        self.mark_with(&mut response, answer.outcome, cache_status);
        if revalidated && self.sends_x_cache_status() {
            let value = HeaderValue::from_static("REVALIDATED");
            response.headers_mut().insert(X_CACHE_STATUS, value);
        }
        response
    }

    /// A fresh hit of the first tier, with the head this thread rendered
    /// for its entry this second; a `304` takes that head's own lines.
    fn hit<B: Body>(
        &self,
        stored: &Arc<StoredResponse>,
        answer: &Answer,
        method: &Method,
        not_modified: Option<HeaderMap>,
    ) -> Response<SharedBody<B>> {
        let age = stored.initial_age + answer.age();
        let hit = HitHead {
            cache_status: self.cache_status_name(),
            x_cache_status: self.sends_x_cache_status(),
            age_secs: age.as_secs(),
            ttl_secs: answer.fresh_for().as_secs(),
        };
        let head = hit_head::head(stored, &hit, || {
            let mut headers = stored.served_headers();
            headers.insert(AGE, freshness::age_header_value(age));
            let cache_status = self.status_entry(answer, None);
            self.mark_headers(&mut headers, Outcome::Hit, cache_status);
            headers
        });
        let mut response = match not_modified {
            None => stored.response_with(head, method != Method::HEAD),
            Some(headers) => {
                let mut response = not_modified_response(&headers);
                let lines = response.headers_mut();
                if let Some(age) = head.get(AGE) {
                    lines.insert(AGE, age.clone());
                }
                // Ours is the last: the stored lines may hold others'.
                let ours = head.get_all(CACHE_STATUS).iter().next_back();
                if let Some(entry) = ours.filter(|_| hit.cache_status.is_some()) {
                    lines.append(CACHE_STATUS, entry.clone());
                }
                if let Some(word) = head.get(X_CACHE_STATUS).filter(|_| hit.x_cache_status) {
                    lines.insert(X_CACHE_STATUS, word.clone());
                }
                response
            }
        };
        response.extensions_mut().insert(Outcome::Hit);
        response
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
        self.mark_headers(response.headers_mut(), outcome, cache_status);
    }

    /// Adds the outcome's `Cache-Status` and `X-Cache-Status`.
    fn mark_headers(
        &self,
        headers: &mut HeaderMap,
        outcome: Outcome,
        cache_status: Option<HeaderValue>,
    ) {
        if let Some(cache_status) = cache_status {
            headers.append(CACHE_STATUS, cache_status);
        }
        if self.sends_x_cache_status() {
            headers.insert(X_CACHE_STATUS, status::x_cache_status(outcome));
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

/// A `304 Not Modified` standing for an answer with `headers`
/// (RFC 9110 §15.4.5).
fn not_modified_response<B: Body>(headers: &HeaderMap) -> Response<SharedBody<B>> {
    let mut response = Response::new(SharedBody::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    *response.headers_mut() = conditional::not_modified_headers(headers);
    response
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
