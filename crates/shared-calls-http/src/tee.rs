//! A miss's body, read once and given twice: the [`Pump`] reads the inner
//! body at the backend's pace into a buffer that becomes the stored answer,
//! and the leader's client reads the same buffer through a [`TeeReader`] at
//! its own pace. A slow or vanished client delays no one else; over the limit
//! the buffer stops growing and the client continues on the inner body
//! itself.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::body::Collected;

/// Splits `body` into the pump that reads it and the reader of the leader's
/// client. At most `limit` bytes of data (and the frame that crossed it) are
/// buffered.
pub(crate) fn tee<B: Body<Data = Bytes>>(body: B, limit: usize) -> (TeeReader<B>, Pump<B>) {
    let state = Arc::new(Mutex::new(State {
        chunks: Vec::new(),
        len: 0,
        trailers: None,
        end: End::Open,
        waker: None,
    }));
    let reader = TeeReader {
        state: state.clone(),
        next: 0,
        trailers_read: false,
        read: 0,
        hint: body.size_hint(),
        rest: None,
    };
    let pump = Pump {
        state,
        body: Some(Box::pin(body)),
        limit,
    };
    (reader, pump)
}

struct State<B: Body> {
    /// The data read so far, frame by frame.
    chunks: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    end: End<B>,
    /// The reader waiting for more.
    waker: Option<Waker>,
}

enum End<B: Body> {
    /// The pump is reading.
    Open,
    /// The body ended; the trailers, if any, are in the state.
    Complete,
    /// The body failed: its error, for the reader to take.
    Failed(Option<B::Error>),
    /// The pump stopped buffering (over the limit, or cancelled): the rest
    /// of the inner body, for the reader to continue on.
    Handed(Option<Pin<Box<B>>>),
}

fn lock<B: Body>(state: &Mutex<State<B>>) -> MutexGuard<'_, State<B>> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Body> State<B> {
    fn finish(&mut self, end: End<B>) {
        self.end = end;
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// What the pump made of the body.
pub(crate) enum Pumped {
    /// The body ended within the limit: its data and trailers, in
    /// allocations of their own.
    Complete(Collected),
    /// Over the limit: the reader continues on the inner body.
    TooLarge,
    /// The body failed; the reader replays what came, then the error.
    Failed,
}

/// Reads the inner body into the shared buffer.
pub(crate) struct Pump<B: Body> {
    state: Arc<Mutex<State<B>>>,
    body: Option<Pin<Box<B>>>,
    limit: usize,
}

impl<B: Body<Data = Bytes>> Pump<B> {
    /// Reads the body to its end, its failure, or the limit. The body stays
    /// in the pump while it reads, so that a pump dropped midway hands it
    /// to the reader.
    pub(crate) async fn run(mut self) -> Pumped {
        let limit = u64::try_from(self.limit).unwrap_or(u64::MAX);
        if let Some(body) = &self.body
            && body.size_hint().lower() > limit
        {
            return self.hand_over();
        }
        loop {
            let Some(body) = self.body.as_mut() else {
                return Pumped::Failed;
            };
            let frame = match body.is_end_stream() {
                true => None,
                false => poll_fn(|cx| body.as_mut().poll_frame(cx)).await,
            };
            let frame = match frame {
                None => {
                    self.body = None;
                    let mut state = lock(&self.state);
                    let collected = collect(&state.chunks, state.len, state.trailers.clone());
                    state.finish(End::Complete);
                    return Pumped::Complete(collected);
                }
                Some(Err(error)) => {
                    self.body = None;
                    lock(&self.state).finish(End::Failed(Some(error)));
                    return Pumped::Failed;
                }
                Some(Ok(frame)) => frame,
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => {
                    let mut state = lock(&self.state);
                    state.len += data.len();
                    state.chunks.push(data);
                    if state.len > self.limit {
                        drop(state);
                        return self.hand_over();
                    }
                    if let Some(waker) = state.waker.take() {
                        waker.wake();
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        lock(&self.state).trailers = Some(trailers);
                    }
                }
            }
        }
    }
}

impl<B: Body> Pump<B> {
    /// Stops buffering: the reader continues on the rest of the body.
    fn hand_over(&mut self) -> Pumped {
        let body = self.body.take();
        lock(&self.state).finish(End::Handed(body));
        Pumped::TooLarge
    }
}

impl<B: Body> Drop for Pump<B> {
    fn drop(&mut self) {
        // Cancelled midway (the call was abandoned): the reader continues
        // on the inner body itself.
        if self.body.is_some() {
            self.hand_over();
        }
    }
}

impl<B: Body> fmt::Debug for Pump<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pump")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The data as one `Bytes`, and the trailers. A single chunk is passed on
/// as it is: the stored answer copies what it keeps into an allocation of
/// its own (`StoredResponse::new`), so a copy here would be a second one.
fn collect(chunks: &[Bytes], len: usize, trailers: Option<HeaderMap>) -> Collected {
    if let [chunk] = chunks {
        return Collected::new(chunk.clone(), trailers);
    }
    let mut data = BytesMut::with_capacity(len);
    for chunk in chunks {
        data.extend_from_slice(chunk);
    }
    Collected::new(data.freeze(), trailers)
}

/// The leader's client's side of a [`tee`]: the buffered frames as they
/// come, then the end, the error, or the rest of the inner body.
pub(crate) struct TeeReader<B: Body> {
    state: Arc<Mutex<State<B>>>,
    next: usize,
    trailers_read: bool,
    /// Bytes of data read, to adjust the inner body's size hint.
    read: u64,
    hint: SizeHint,
    rest: Option<Pin<Box<B>>>,
}

impl<B: Body<Data = Bytes>> TeeReader<B> {
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(rest) = self.rest.as_mut() {
            return rest.as_mut().poll_frame(cx);
        }
        let mut state = lock(&self.state);
        if let Some(chunk) = state.chunks.get(self.next).cloned() {
            self.next += 1;
            self.read += chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match &mut state.end {
            End::Open => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            End::Complete if self.trailers_read => Poll::Ready(None),
            End::Complete => {
                self.trailers_read = true;
                Poll::Ready(state.trailers.clone().map(|t| Ok(Frame::trailers(t))))
            }
            End::Failed(error) => Poll::Ready(error.take().map(Err)),
            End::Handed(rest) => {
                self.rest = rest.take();
                drop(state);
                match self.rest.as_mut() {
                    Some(rest) => rest.as_mut().poll_frame(cx),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        match &self.rest {
            Some(rest) => rest.is_end_stream(),
            None => {
                let state = lock(&self.state);
                let drained = self.next == state.chunks.len();
                match &state.end {
                    End::Complete => drained && (self.trailers_read || state.trailers.is_none()),
                    End::Failed(error) => drained && error.is_none(),
                    End::Open | End::Handed(_) => false,
                }
            }
        }
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        if let Some(rest) = &self.rest {
            return rest.size_hint();
        }
        let mut hint = SizeHint::new();
        hint.set_lower(self.hint.lower().saturating_sub(self.read));
        if let Some(upper) = self.hint.upper() {
            hint.set_upper(upper.saturating_sub(self.read));
        }
        hint
    }
}

impl<B: Body> fmt::Debug for TeeReader<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeeReader")
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}
