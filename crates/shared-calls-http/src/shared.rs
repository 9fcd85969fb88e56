//! The shared forms of an HTTP answer: a buffered response every waiter can
//! rebuild, or one that only its own caller may take.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::header::CONTENT_LENGTH;
use http::response::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};

use crate::body::{Collected, SharedBody};
use crate::cache_control::VaryKey;
use crate::framing;
use crate::owned::{self, HeaderLines};

/// Header lines a served answer may gain: `Age`, `Cache-Status`,
/// `X-Cache-Status`, and a `HEAD` answer's `Content-Length`.
const ADDED_HEADER_LINES: usize = 4;

/// The id of the next stored answer.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A complete response, buffered: status, headers, body and trailers.
pub(crate) struct StoredResponse {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    headers: HeaderLines,
    pub(crate) body: Collected,
    /// The request header values it varies on; `None` when it does not vary.
    pub(crate) vary: Option<VaryKey>,
    /// Its `Age` when it arrived.
    pub(crate) initial_age: Duration,
    /// It went without fields its origin sent (`no-cache="f"`,
    /// `private="f"`): the client of the call that fetched it gets that
    /// call's own response, not this copy.
    pub(crate) stripped: bool,
    /// Unique among the answers of a process: the variants of a URI are
    /// keyed by the answer that told how it varies.
    pub(crate) id: u64,
    /// Made from a kept answer that a `304` confirmed, rather than fetched.
    pub(crate) revalidated: bool,
    /// A `304` answered its conditional refresh without identifying it:
    /// the next refresh fetches it whole.
    pub(crate) unidentified: AtomicBool,
}

impl StoredResponse {
    pub(crate) fn new(
        mut parts: Parts,
        body: Collected,
        vary: Option<VaryKey>,
        initial_age: Duration,
    ) -> Self {
        framing::stored_headers(&mut parts.headers, parts.status, body.data().len());
        let (headers, body) = owned::own(parts.headers, body);
        Self {
            status: parts.status,
            version: parts.version,
            headers,
            body,
            vary,
            initial_age,
            stripped: false,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            revalidated: false,
            unidentified: AtomicBool::new(false),
        }
    }

    /// This answer, confirmed by a `304`, with the merged `headers`: the
    /// body and trailers are shared with it, not copied.
    pub(crate) fn freshened(
        &self,
        headers: HeaderMap,
        vary: Option<VaryKey>,
        initial_age: Duration,
    ) -> Self {
        let (headers, _) = owned::own(headers, Collected::default());
        Self {
            status: self.status,
            version: self.version,
            headers,
            body: self.body.clone(),
            vary,
            initial_age,
            // Every waiter, the leader included, receives the merged copy:
            // its own call brought no body to answer with.
            stripped: false,
            // Its variants stay keyed by the answer that first told them.
            id: self.id,
            revalidated: true,
            unidentified: AtomicBool::new(false),
        }
    }

    /// Its header lines in a map of their own.
    pub(crate) fn headers(&self) -> HeaderMap {
        self.headers.to_map(0)
    }

    /// Its header lines as stored.
    pub(crate) fn header_lines(&self) -> &HeaderLines {
        &self.headers
    }

    /// Whether it may answer a request with these headers.
    pub(crate) fn serves(&self, request_headers: &HeaderMap) -> bool {
        self.vary
            .as_ref()
            .is_none_or(|vary| vary.matches(request_headers))
    }

    /// Its header lines in a map with room for the lines a served answer
    /// gains, so that adding them allocates nothing more.
    pub(crate) fn served_headers(&self) -> HeaderMap {
        self.headers.to_map(ADDED_HEADER_LINES)
    }

    /// A new response with its content; without a body for `HEAD`.
    pub(crate) fn to_response<B: http_body::Body>(
        &self,
        with_body: bool,
    ) -> Response<SharedBody<B>> {
        self.response_with(self.served_headers(), with_body)
    }

    /// A new response with its content and `headers`, made from its lines;
    /// without a body for `HEAD`.
    pub(crate) fn response_with<B: http_body::Body>(
        &self,
        headers: HeaderMap,
        with_body: bool,
    ) -> Response<SharedBody<B>> {
        let body = if with_body {
            self.body.to_body()
        } else {
            SharedBody::empty()
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.version_mut() = self.version;
        *response.headers_mut() = headers;
        if !with_body && !self.headers.contains_key(&CONTENT_LENGTH) {
            // A `HEAD` answer announces the length the `GET` would have sent
            // (RFC 9110 §8.6), not that of its empty body.
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(self.body.data().len()));
        }
        response
    }

    /// The heap it holds, for a cache bounded by weight.
    pub(crate) fn weight(&self) -> u32 {
        u32::try_from(owned::weight(self)).unwrap_or(u32::MAX)
    }
}

/// A value that only one caller may take: a streamed response or an inner
/// error that cannot be cloned. Its type is erased so that the cache does
/// not depend on the inner service's types.
#[derive(Clone)]
pub(crate) struct TakeOnce(Arc<Mutex<Option<Box<dyn Any + Send>>>>);

impl TakeOnce {
    pub(crate) fn new<T: Send + 'static>(value: T) -> Self {
        Self(Arc::new(Mutex::new(Some(Box::new(value)))))
    }

    /// Whether there is still something to take.
    pub(crate) fn is_taken(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Nothing to take: the caller it was for has its answer already.
    pub(crate) fn taken() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }

    /// The value, if nobody took it and it is a `T`. A value of another type
    /// stays for a later `take` of its own type.
    pub(crate) fn take<T: 'static>(&self) -> Option<T> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|value| (**value).is::<T>()) {
            return None;
        }
        slot.take()?.downcast().ok().map(|value| *value)
    }
}

/// The shared form of an HTTP answer, as the cache stores it and every
/// waiter of a flight receives it.
#[derive(Clone)]
pub struct HttpShared(pub(crate) Shared);

#[derive(Clone)]
pub(crate) enum Shared {
    /// Buffered: every waiter rebuilds the response.
    Complete(Arc<StoredResponse>),
    /// Streamed (over the size limit, failed midway, or not to be seen by
    /// other users): only the caller whose call produced it takes it; the
    /// others call on their own.
    OwnClientOnly(TakeOnce),
}

impl HttpShared {
    /// How many bytes it holds on the heap, for the byte bound.
    pub fn weight(&self) -> u32 {
        match &self.0 {
            Shared::Complete(stored) => stored.weight(),
            Shared::OwnClientOnly(_) => 1,
        }
    }
}

impl fmt::Debug for HttpShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Shared::Complete(stored) => f
                .debug_struct("HttpShared")
                .field("status", &stored.status)
                .field("body_len", &stored.body.data().len())
                .finish_non_exhaustive(),
            Shared::OwnClientOnly(_) => f.write_str("HttpShared(own client only)"),
        }
    }
}

/// A failed HTTP call as its waiters receive it (never stored): a server
/// error response every waiter can rebuild, or the inner service's error.
#[derive(Clone)]
pub struct HttpFailure(pub(crate) Failure);

#[derive(Clone)]
pub(crate) enum Failure {
    /// A 5xx (or failed gRPC) response, buffered.
    Status(Arc<StoredResponse>),
    /// The inner service's error (or an error response meant for its own
    /// client only): the caller whose call failed takes it; the others
    /// answer 502.
    Error(TakeOnce),
    /// The answer broke on its way (its body failed, or its framing lied),
    /// or was a `304` that did not identify the kept answer; its own client
    /// has what came, if anything, and every other caller a 502.
    Broken,
    /// The inner service's error on a call that revalidated a kept answer:
    /// the caller whose call failed takes it; the others answer 504, the
    /// kept answer not being theirs to serve (RFC 9111 §4.2.4, §5.2.2.2).
    Unrevalidated(TakeOnce),
}

impl fmt::Debug for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Failure::Status(stored) => f.debug_tuple("HttpFailure").field(&stored.status).finish(),
            Failure::Error(_) => f.write_str("HttpFailure(error)"),
            Failure::Broken => f.write_str("HttpFailure(broken)"),
            Failure::Unrevalidated(_) => f.write_str("HttpFailure(unrevalidated)"),
        }
    }
}
