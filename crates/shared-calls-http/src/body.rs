//! The response body of the HTTP middleware, and buffering with a size limit.
//!
//! Every response that goes through the middleware carries a [`SharedBody`]:
//! either the inner service's body streamed untouched (bypass), shared bytes
//! plus trailers (cache hit, collapsed or fresh answer), nothing at all (a
//! `HEAD` answered from the cache), or a replay of what was already read
//! followed by the rest of the inner body (an answer that was too large to
//! share, or one whose body failed midway).
//!
//! [`buffer`] reads an inner body into memory up to a limit and tells which of
//! these it became: [`Buffered::Complete`] with the [`Collected`] bytes and
//! trailers, [`Buffered::TooLarge`], or [`Buffered::Failed`]. In the last two
//! cases the body it hands back gives the client the complete response, byte
//! for byte, exactly as it would have received it without the middleware.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::tee::TeeReader;

pin_project! {
    /// The body of every response the HTTP middleware returns.
    ///
    /// A `SharedBody` is one of:
    ///
    /// - the inner body, streamed untouched ([`SharedBody::streamed`]);
    /// - shared or cached bytes followed by optional trailers
    ///   ([`SharedBody::full`]); creating one from a stored entry costs a
    ///   [`Bytes`] clone and a trailers clone;
    /// - an empty body ([`SharedBody::empty`]), for `HEAD` requests answered
    ///   from the cache;
    /// - the frames [`buffer`] already read, replayed, then the rest of the
    ///   inner body (an answer over the buffering limit);
    /// - the frames [`buffer`] already read, replayed, then the error the inner
    ///   body failed with (an answer that failed midway: the client sees what
    ///   arrived and then the same error, never a complete-looking body);
    /// - a miss's body as it is buffered for the others: the leader's client
    ///   reads the frames as the inner body yields them, then its end, its
    ///   error, or (over the buffering limit) the rest of the inner body.
    ///
    /// # Auto traits
    ///
    /// `SharedBody<B>` is `Send` when `B` and `B::Error` are `Send`, `Sync`
    /// when `B` and `B::Error` are `Send` and `Sync` (the error is kept when
    /// a body failed midway, and a miss's body is shared with the buffer
    /// that fills the cache), and `Unpin` when `B` is `Unpin`.
    pub struct SharedBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        Streamed {
            #[pin]
            body: B,
        },
        Full {
            data: Option<Bytes>,
            trailers: Option<HeaderMap>,
        },
        Empty,
        Replay {
            prefix: VecDeque<Frame<Bytes>>,
            // Boxed: `buffer` has polled the body in place before handing it
            // over, and only a box lets a `!Unpin` body move after that.
            rest: Pin<Box<B>>,
        },
        ReplayThenError {
            prefix: VecDeque<Frame<Bytes>>,
            error: Option<B::Error>,
        },
        Tee {
            reader: TeeReader<B>,
        },
    }
}

impl<B: Body> SharedBody<B> {
    /// The inner body, streamed untouched: every frame, error, end-of-stream
    /// flag and size hint is the inner body's own.
    pub fn streamed(body: B) -> Self {
        Self {
            kind: Kind::Streamed { body },
        }
    }

    /// A body that yields `data` as one data frame (none if it is empty), then
    /// `trailers` if there are any, then ends.
    ///
    /// Its size hint is exact.
    pub fn full(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Full {
                data: if data.is_empty() { None } else { Some(data) },
                trailers,
            },
        }
    }

    /// A body with no data and no trailers; its size hint is exactly zero.
    pub fn empty() -> Self {
        Self { kind: Kind::Empty }
    }

    /// The leader's side of a miss whose body is being buffered as it
    /// streams.
    pub(crate) fn tee(reader: TeeReader<B>) -> Self {
        Self {
            kind: Kind::Tee { reader },
        }
    }

    fn replay(prefix: VecDeque<Frame<Bytes>>, rest: Pin<Box<B>>) -> Self {
        Self {
            kind: Kind::Replay { prefix, rest },
        }
    }

    fn replay_then_error(prefix: VecDeque<Frame<Bytes>>, error: B::Error) -> Self {
        Self {
            kind: Kind::ReplayThenError {
                prefix,
                error: Some(error),
            },
        }
    }
}

impl<B: Body> Default for SharedBody<B> {
    /// An empty body.
    fn default() -> Self {
        Self::empty()
    }
}

impl<B: Body> fmt::Debug for SharedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Streamed { .. } => f
                .debug_struct("SharedBody::Streamed")
                .finish_non_exhaustive(),
            Kind::Full { data, trailers } => f
                .debug_struct("SharedBody::Full")
                .field("data_len", &data.as_ref().map_or(0, Bytes::len))
                .field("trailers", trailers)
                .finish(),
            Kind::Empty => f.write_str("SharedBody::Empty"),
            Kind::Replay { prefix, .. } => f
                .debug_struct("SharedBody::Replay")
                .field("prefix_frames", &prefix.len())
                .field("prefix_len", &prefix_len(prefix))
                .finish_non_exhaustive(),
            Kind::ReplayThenError { prefix, error } => f
                .debug_struct("SharedBody::ReplayThenError")
                .field("prefix_frames", &prefix.len())
                .field("prefix_len", &prefix_len(prefix))
                .field("error_pending", &error.is_some())
                .finish(),
            Kind::Tee { reader } => f.debug_tuple("SharedBody::Tee").field(reader).finish(),
        }
    }
}

impl<B> Body for SharedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Streamed { body } => body.poll_frame(cx),
            KindProj::Full { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            KindProj::Empty => Poll::Ready(None),
            KindProj::Replay { prefix, rest } => match prefix.pop_front() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None => rest.as_mut().poll_frame(cx),
            },
            KindProj::ReplayThenError { prefix, error } => match prefix.pop_front() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None => Poll::Ready(error.take().map(Err)),
            },
            KindProj::Tee { reader } => reader.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Streamed { body } => body.is_end_stream(),
            Kind::Full { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Empty => true,
            Kind::Replay { prefix, rest } => prefix.is_empty() && rest.is_end_stream(),
            Kind::ReplayThenError { prefix, error } => prefix.is_empty() && error.is_none(),
            Kind::Tee { reader } => reader.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Streamed { body } => body.size_hint(),
            Kind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Replay { prefix, rest } => {
                let prefix = prefix_len(prefix);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(prefix));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(prefix));
                }
                hint
            }
            // The data still to come is known, but the body ends with an
            // error: no upper bound, so that a server never announces (and a
            // client never trusts) a length that looks like a complete body.
            Kind::ReplayThenError { prefix, .. } => {
                let mut hint = SizeHint::new();
                hint.set_lower(prefix_len(prefix));
                hint
            }
            Kind::Tee { reader } => reader.size_hint(),
        }
    }
}

fn prefix_len(prefix: &VecDeque<Frame<Bytes>>) -> u64 {
    prefix
        .iter()
        .filter_map(Frame::data_ref)
        .map(|d| d.len() as u64)
        .sum()
}

/// A body read completely into memory: its data as one [`Bytes`] and its
/// trailers.
///
/// Cloning is cheap (a reference count on the data, a copy of the trailers),
/// so one `Collected` can answer any number of waiters and cache hits through
/// [`Collected::to_body`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    data: Bytes,
    // Boxed: most bodies have none, and every stored answer holds one.
    trailers: Option<Box<HeaderMap>>,
}

impl Collected {
    /// Data and trailers read, or stored, elsewhere.
    pub fn new(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        let trailers = trailers.map(Box::new);
        Self { data, trailers }
    }

    /// All the data frames, concatenated.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The trailers, if the body had any (for gRPC: `grpc-status` and
    /// friends).
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_deref()
    }

    /// The data and the trailers.
    pub fn into_parts(self) -> (Bytes, Option<HeaderMap>) {
        (self.data, self.trailers.map(|trailers| *trailers))
    }

    /// A body that yields the data, then the trailers.
    pub fn into_body<B: Body>(self) -> SharedBody<B> {
        SharedBody::full(self.data, self.trailers.map(|trailers| *trailers))
    }

    /// A body that yields a copy of the data (a [`Bytes`] clone, no copy of
    /// the bytes themselves), then a copy of the trailers.
    pub fn to_body<B: Body>(&self) -> SharedBody<B> {
        SharedBody::full(self.data.clone(), self.trailers.as_deref().cloned())
    }
}

/// What [`buffer`] made of a body.
pub enum Buffered<B: Body> {
    /// The body ended within the limit and without an error.
    Complete(Collected),
    /// The body was larger than the limit: its size hint said so before
    /// anything was read, or the data read crossed the limit. The returned body
    /// replays the data read so far, then continues the inner body.
    TooLarge(SharedBody<B>),
    /// The body failed before its end. The returned body replays the frames
    /// read so far, then yields the error.
    Failed(SharedBody<B>),
}

impl<B: Body> Buffered<B> {
    /// The body to give the client, whatever the outcome.
    pub fn into_body(self) -> SharedBody<B> {
        match self {
            Self::Complete(collected) => collected.into_body(),
            Self::TooLarge(body) | Self::Failed(body) => body,
        }
    }
}

impl<B: Body> fmt::Debug for Buffered<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Complete(collected) => f.debug_tuple("Complete").field(collected).finish(),
            Self::TooLarge(body) => f.debug_tuple("TooLarge").field(body).finish(),
            Self::Failed(body) => f.debug_tuple("Failed").field(body).finish(),
        }
    }
}

/// Reads `body` into memory, up to `limit` bytes of data.
///
/// - If the body ends with at most `limit` bytes of data, the result is
///   [`Buffered::Complete`]: the data frames concatenated into one [`Bytes`]
///   (no copy when the body had a single data frame) and the trailers, if any.
/// - If the body's [`size_hint`](Body::size_hint) already promises more than
///   `limit` bytes, nothing is read: [`Buffered::TooLarge`] with the body
///   untouched.
/// - If reading a data frame takes the total over `limit`, reading stops at
///   once: [`Buffered::TooLarge`] with a body that replays the data read so
///   far, the crossing frame included, and then the rest of the inner body.
/// - If the body yields an error, [`Buffered::Failed`] with a body that
///   replays the frames read so far and then yields that error.
///
/// In every case the returned body gives the client exactly the bytes,
/// trailers and error the inner body would have given it. Frames read before
/// the limit was crossed may be merged into one data frame.
///
/// # Memory
///
/// At most `limit` bytes plus the frame that crossed the limit are held.
/// Trailers do not count towards the limit (their size is bounded by the
/// protocol's header limits), nor do empty data frames, which are dropped.
/// With a `limit` of 0 nothing is buffered: any body with data is
/// [`Buffered::TooLarge`].
///
/// The inner body is moved into a box before it is first polled, so that it
/// can be handed over in [`Buffered::TooLarge`] after being polled in place,
/// `Unpin` or not: one allocation per buffered body.
///
/// # Cancellation
///
/// Dropping the future drops the body and whatever was read.
pub async fn buffer<B>(body: B, limit: usize) -> Buffered<B>
where
    B: Body<Data = Bytes>,
{
    let hint = body.size_hint();
    // `usize` always fits in a `u64` on supported targets; saturate anyway.
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if hint.lower() > limit_u64 {
        return Buffered::TooLarge(SharedBody::streamed(body));
    }
    // Bounded by `limit`, so this conversion cannot lose anything we use.
    let expected = usize::try_from(hint.lower()).unwrap_or(limit).min(limit);

    let mut body = Box::pin(body);
    let mut acc = Accumulator::new(expected);
    while !body.is_end_stream() {
        let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await else {
            break;
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                return Buffered::Failed(SharedBody::replay_then_error(acc.into_frames(), error));
            }
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) if data.len() > limit - acc.len => {
                let mut prefix = acc.into_frames();
                prefix.push_back(Frame::data(data));
                return Buffered::TooLarge(SharedBody::replay(prefix, body));
            }
            Ok(data) => acc.push_data(data, limit),
            Err(frame) => {
                // http-body 1 has data and trailers frames only; a frame of
                // any future kind is not part of what can be stored.
                if let Ok(trailers) = frame.into_trailers() {
                    acc.push_trailers(trailers);
                }
            }
        }
    }
    Buffered::Complete(acc.finish())
}

/// The data and trailers read so far by [`buffer`].
///
/// The first data frame is kept as it is; from the second on, the data is
/// copied into one buffer, so a single-frame body is never copied and the
/// frames of a many-frame body are released as soon as they are read.
#[derive(Debug)]
struct Accumulator {
    first: Option<Bytes>,
    rest: BytesMut,
    len: usize,
    expected: usize,
    trailers: Option<HeaderMap>,
}

impl Accumulator {
    fn new(expected: usize) -> Self {
        Self {
            first: None,
            rest: BytesMut::new(),
            len: 0,
            expected,
            trailers: None,
        }
    }

    /// `data` is not empty and fits: `self.len + data.len() <= limit`.
    fn push_data(&mut self, data: Bytes, limit: usize) {
        let total = self.len + data.len();
        if self.len == 0 {
            self.first = Some(data);
        } else {
            if let Some(first) = self.first.take() {
                // Second data frame: from here on the data is copied. The size
                // hint read before the first frame sizes the buffer, within
                // the limit.
                self.rest.reserve(total.max(self.expected).min(limit));
                self.rest.extend_from_slice(&first);
            }
            self.rest.extend_from_slice(&data);
        }
        self.len = total;
    }

    fn push_trailers(&mut self, trailers: HeaderMap) {
        match &mut self.trailers {
            Some(existing) => existing.extend(trailers),
            None => self.trailers = Some(trailers),
        }
    }

    fn data(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.rest).freeze(),
        }
    }

    fn into_frames(mut self) -> VecDeque<Frame<Bytes>> {
        let mut frames = VecDeque::with_capacity(3);
        let data = self.data();
        if !data.is_empty() {
            frames.push_back(Frame::data(data));
        }
        if let Some(trailers) = self.trailers.take() {
            frames.push_back(Frame::trailers(trailers));
        }
        frames
    }

    fn finish(mut self) -> Collected {
        Collected::new(self.data(), self.trailers.take())
    }
}
