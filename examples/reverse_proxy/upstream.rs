//! The origin side: a pooled HTTP/1.1 client bounded in time at every step,
//! and the answers it will not relay.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, Sleep};
use tower::Service;

use crate::hop_by_hop;
use crate::settings::Settings;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the origin's answer cannot be relayed; the client gets a 502 or 504.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// Connecting or sending failed, or the answer's head was malformed.
    Unreachable(hyper_util::client::legacy::Error),
    /// No answer head within the first-byte timeout.
    FirstByteTimeout(Duration),
    /// An answer whose framing this proxy will not pass off as a plain body:
    /// a `Transfer-Encoding` other than `chunked` (the body arrives still
    /// coded), or `Transfer-Encoding` together with `Content-Length`.
    Framing(String),
}

impl UpstreamError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::FirstByteTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Unreachable(_) | Self::Framing(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(error) => {
                // The client's own message names only the stage; its
                // sources say what happened ("Connection refused").
                write!(f, "upstream unreachable: {error}")?;
                let mut source = std::error::Error::source(error);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            Self::FirstByteTimeout(timeout) => {
                write!(
                    f,
                    "upstream sent no answer within {} ms",
                    timeout.as_millis()
                )
            }
            Self::Framing(what) => write!(f, "upstream answer framed as {what}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// The origin as a tower service: requests are re-aimed at it, answers come
/// back with their hop-by-hop headers removed and their body watched.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    client: Client<HttpConnector, Incoming>,
    authority: Authority,
    first_byte_timeout: Duration,
    between_bytes_timeout: Duration,
}

impl Upstream {
    pub(crate) fn new(settings: &Settings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            authority: settings.upstream.clone(),
            first_byte_timeout: settings.first_byte_timeout,
            between_bytes_timeout: settings.between_bytes_timeout,
        }
    }
}

impl Service<Request<Incoming>> for Upstream {
    type Response = Response<BetweenBytes<Incoming>>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        // The legacy client is always ready; it queues for its pool itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        // The request arrives in origin form with its one `Host`, which the
        // client keeps: only where the bytes go changes.
        let mut target = request.uri().clone().into_parts();
        target.scheme = Some(Scheme::HTTP);
        target.authority = Some(self.authority.clone());
        target
            .path_and_query
            .get_or_insert(PathAndQuery::from_static("/"));
        *request.uri_mut() =
            Uri::from_parts(target).expect("scheme, authority and path make a URI");
        *request.version_mut() = http::Version::HTTP_11;
        let sent = self.client.request(request);
        let (first_byte, between_bytes) = (self.first_byte_timeout, self.between_bytes_timeout);
        Box::pin(async move {
            let response = tokio::time::timeout(first_byte, sent)
                .await
                .map_err(|_| UpstreamError::FirstByteTimeout(first_byte))?
                .map_err(UpstreamError::Unreachable)?;
            check_framing(response.headers())?;
            let (mut parts, body) = response.into_parts();
            hop_by_hop::strip(&mut parts.headers);
            // The proxy answers in its own HTTP version, not the origin's
            // (RFC 9110 §6.2): an HTTP/1.0 origin's answer would otherwise
            // go out, and be stored, as HTTP/1.0.
            parts.version = http::Version::HTTP_11;
            Ok(Response::from_parts(
                parts,
                BetweenBytes::new(body, between_bytes),
            ))
        })
    }
}

/// hyper decodes a final `chunked` coding and nothing else: any other
/// coding would reach the client, and the cache, still coded under headers
/// that no longer say so (`Transfer-Encoding` is hop-by-hop). A length
/// beside `chunked` contradicts it. nginx answers both with a 502 too.
fn check_framing(headers: &HeaderMap) -> Result<(), UpstreamError> {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii);
    match (codings.next(), codings.next()) {
        (None, _) => Ok(()),
        (Some(coding), None) if coding.eq_ignore_ascii_case(b"chunked") => {
            if headers.contains_key(CONTENT_LENGTH) {
                Err(UpstreamError::Framing(
                    "both Transfer-Encoding and Content-Length".into(),
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(UpstreamError::Framing(format!(
            "Transfer-Encoding: {:?}",
            headers
                .get_all(TRANSFER_ENCODING)
                .iter()
                .collect::<Vec<_>>()
        ))),
    }
}

/// An answer body that fails when the origin stays silent longer than
/// `timeout` while it is being read: the cache then stores nothing and the
/// client's connection is cut rather than held. (Only the origin's silence
/// counts: time the reader spends elsewhere does not.)
#[derive(Debug)]
pub(crate) struct BetweenBytes<B> {
    body: B,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
}

impl<B> BetweenBytes<B> {
    fn new(body: B, timeout: Duration) -> Self {
        Self {
            body,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            waiting: false,
        }
    }
}

/// The origin went silent inside a body.
#[derive(Debug)]
struct BodyTimeout(Duration);

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream body silent for {} ms", self.0.as_millis())
    }
}

impl std::error::Error for BodyTimeout {}

impl<B> Body for BetweenBytes<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    this.deadline.as_mut().reset(Instant::now() + this.timeout);
                }
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyTimeout(this.timeout).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
