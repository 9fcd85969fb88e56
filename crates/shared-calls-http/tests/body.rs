//! `SharedBody` and `buffer`: exact replay of bytes, trailers and errors,
//! the buffering limit and its memory bound.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use proptest::prelude::*;
use shared_calls_http::body::{Buffered, Collected, SharedBody, buffer};

const WAIT: Duration = Duration::from_secs(5);

/// Every await of these tests goes through here.
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("the future did not finish in time")
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct TestError(u32);

#[derive(Clone, Debug)]
enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    Error(TestError),
    /// Returns `Pending` once (after waking the task).
    Pending,
}

/// A body that plays a script and counts the frames (and errors) it yielded.
/// Deliberately not `Debug`.
struct ScriptBody {
    steps: VecDeque<Step>,
    polled: Arc<AtomicUsize>,
    hint: SizeHint,
}

impl ScriptBody {
    fn new(steps: impl IntoIterator<Item = Step>) -> (Self, Arc<AtomicUsize>) {
        let polled = Arc::new(AtomicUsize::new(0));
        let body = Self {
            steps: steps.into_iter().collect(),
            polled: polled.clone(),
            hint: SizeHint::new(),
        };
        (body, polled)
    }

    fn with_hint(mut self, hint: SizeHint) -> Self {
        self.hint = hint;
        self
    }
}

impl Body for ScriptBody {
    type Data = Bytes;
    type Error = TestError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TestError>>> {
        let Some(step) = self.steps.pop_front() else {
            return Poll::Ready(None);
        };
        let item = match step {
            Step::Pending => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Step::Data(data) => Ok(Frame::data(data)),
            Step::Trailers(trailers) => Ok(Frame::trailers(trailers)),
            Step::Error(error) => Err(error),
        };
        self.polled.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Some(item))
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// A body that never ends: 16-byte data frames forever.
struct EndlessBody {
    polled: Arc<AtomicUsize>,
}

impl Body for EndlessBody {
    type Data = Bytes;
    type Error = TestError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TestError>>> {
        self.polled.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[7; 16])))))
    }
}

/// Everything a body yields, until its end or its first error.
#[derive(Debug, Default)]
struct Drained {
    data: Vec<u8>,
    data_frames: usize,
    trailers: Option<HeaderMap>,
    error: Option<TestError>,
    /// Whether the body ended (`None`) after its error, when it had one.
    ended_after_error: bool,
}

async fn drain<B>(body: B) -> Drained
where
    B: Body<Data = Bytes, Error = TestError>,
{
    let mut body = std::pin::pin!(body);
    let mut out = Drained::default();
    while let Some(frame) = within(poll_fn(|cx| body.as_mut().poll_frame(cx))).await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => {
                    assert!(out.trailers.is_none(), "data after trailers");
                    out.data.extend_from_slice(&data);
                    out.data_frames += 1;
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().expect("a data or trailers frame");
                    assert!(out.trailers.is_none(), "two trailers frames");
                    out.trailers = Some(trailers);
                }
            },
            Err(error) => {
                out.error = Some(error);
                out.ended_after_error = within(poll_fn(|cx| body.as_mut().poll_frame(cx)))
                    .await
                    .is_none();
                break;
            }
        }
    }
    out
}

async fn next_frame<B>(body: &mut Pin<&mut B>) -> Option<Result<Frame<Bytes>, B::Error>>
where
    B: Body<Data = Bytes>,
{
    within(poll_fn(|cx| body.as_mut().poll_frame(cx))).await
}

fn data(frames: &[&'static [u8]]) -> Vec<Step> {
    frames
        .iter()
        .map(|f| Step::Data(Bytes::from_static(f)))
        .collect()
}

fn grpc_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("ok"));
    trailers
}

fn expect_complete<B: Body>(buffered: Buffered<B>) -> Collected {
    match buffered {
        Buffered::Complete(collected) => collected,
        other => panic!("expected Complete, got {other:?}"),
    }
}

fn expect_too_large<B: Body>(buffered: Buffered<B>) -> SharedBody<B> {
    match buffered {
        Buffered::TooLarge(body) => body,
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

fn expect_failed<B: Body>(buffered: Buffered<B>) -> SharedBody<B> {
    match buffered {
        Buffered::Failed(body) => body,
        other => panic!("expected Failed, got {other:?}"),
    }
}

// ---- Complete ------------------------------------------------------------

#[tokio::test]
async fn complete_keeps_bytes_and_trailers_of_many_frames() {
    let mut steps = data(&[b"hello", b", ", b"world", b"!"]);
    steps.push(Step::Trailers(grpc_trailers()));
    let (body, polled) = ScriptBody::new(steps);

    let collected = expect_complete(within(buffer(body, 64)).await);
    assert_eq!(collected.data(), &Bytes::from_static(b"hello, world!"));
    assert_eq!(collected.trailers(), Some(&grpc_trailers()));
    assert_eq!(polled.load(Ordering::SeqCst), 5);

    // The shared body gives the same bytes and trailers back, every time.
    for _ in 0..2 {
        let out = drain(collected.to_body::<ScriptBody>()).await;
        assert_eq!(out.data, b"hello, world!");
        assert_eq!(out.data_frames, 1);
        assert_eq!(out.trailers, Some(grpc_trailers()));
        assert_eq!(out.error, None);
    }
    let out = drain(collected.into_body::<ScriptBody>()).await;
    assert_eq!(out.data, b"hello, world!");
    assert_eq!(out.trailers, Some(grpc_trailers()));
}

#[tokio::test]
async fn complete_single_frame_is_not_copied() {
    let payload = Bytes::from(vec![42u8; 1000]);
    let (body, _) = ScriptBody::new([Step::Data(payload.clone())]);
    let collected = expect_complete(within(buffer(body, 1000)).await);
    assert_eq!(collected.data(), &payload);
    assert_eq!(collected.data().as_ptr(), payload.as_ptr());
    assert_eq!(collected.trailers(), None);
}

#[tokio::test]
async fn complete_empty_body() {
    let (body, polled) = ScriptBody::new([]);
    let collected = expect_complete(within(buffer(body, 10)).await);
    assert!(collected.data().is_empty());
    assert_eq!(collected.trailers(), None);
    assert_eq!(polled.load(Ordering::SeqCst), 0);

    // Empty data frames count for nothing, even with a zero limit.
    let (body, _) = ScriptBody::new(data(&[b"", b"", b""]));
    let collected = expect_complete(within(buffer(body, 0)).await);
    assert_eq!(collected, Collected::default());

    let out = drain(collected.into_body::<ScriptBody>()).await;
    assert!(out.data.is_empty());
    assert_eq!(out.data_frames, 0);
    assert_eq!(out.trailers, None);
}

#[tokio::test]
async fn complete_trailers_only() {
    let (body, _) = ScriptBody::new([Step::Trailers(grpc_trailers())]);
    // Trailers do not count towards the limit.
    let collected = expect_complete(within(buffer(body, 0)).await);
    assert!(collected.data().is_empty());
    assert_eq!(collected.trailers(), Some(&grpc_trailers()));

    let out = drain(collected.into_body::<ScriptBody>()).await;
    assert_eq!(out.data_frames, 0);
    assert_eq!(out.trailers, Some(grpc_trailers()));
}

#[tokio::test]
async fn complete_at_exactly_the_limit() {
    let (body, _) = ScriptBody::new(data(&[b"12345", b"67890"]));
    let collected = expect_complete(within(buffer(body, 10)).await);
    assert_eq!(collected.data(), &Bytes::from_static(b"1234567890"));

    // An exact size hint equal to the limit is not "too large".
    let (body, _) = ScriptBody::new(data(&[b"12345", b"67890"]));
    let body = body.with_hint(SizeHint::with_exact(10));
    let collected = expect_complete(within(buffer(body, 10)).await);
    assert_eq!(collected.data(), &Bytes::from_static(b"1234567890"));
}

#[tokio::test]
async fn complete_survives_pending_polls() {
    let steps = vec![
        Step::Pending,
        Step::Data(Bytes::from_static(b"ab")),
        Step::Pending,
        Step::Pending,
        Step::Data(Bytes::from_static(b"cd")),
        Step::Pending,
        Step::Trailers(grpc_trailers()),
        Step::Pending,
    ];
    let (body, _) = ScriptBody::new(steps);
    let collected = expect_complete(within(buffer(body, 4)).await);
    assert_eq!(collected.data(), &Bytes::from_static(b"abcd"));
    assert_eq!(collected.trailers(), Some(&grpc_trailers()));
}

#[test]
fn collected_parts_round_trip() {
    let collected = Collected::new(Bytes::from_static(b"x"), Some(grpc_trailers()));
    let (data, trailers) = collected.clone().into_parts();
    assert_eq!(data, Bytes::from_static(b"x"));
    assert_eq!(trailers, Some(grpc_trailers()));
    assert_eq!(Collected::new(data, trailers), collected);
}

// ---- TooLarge ------------------------------------------------------------

#[tokio::test]
async fn too_large_stops_after_the_crossing_frame_and_replays_everything() {
    // Ten frames of ten bytes; a limit of 35 is crossed by the fourth frame.
    let frames: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i; 10])).collect();
    let mut steps: Vec<Step> = frames.iter().cloned().map(Step::Data).collect();
    steps.push(Step::Trailers(grpc_trailers()));
    let (body, polled) = ScriptBody::new(steps);

    let body = expect_too_large(within(buffer(body, 35)).await);
    assert_eq!(
        polled.load(Ordering::SeqCst),
        4,
        "read on past the crossing frame"
    );

    let out = drain(body).await;
    assert_eq!(out.data, frames.concat());
    assert_eq!(out.trailers, Some(grpc_trailers()));
    assert_eq!(out.error, None);
    assert_eq!(polled.load(Ordering::SeqCst), 11);
}

#[tokio::test]
async fn too_large_by_size_hint_is_not_read_at_all() {
    let (body, polled) = ScriptBody::new(data(&[b"0123456789", b"abcdefghij"]));
    let body = body.with_hint(SizeHint::with_exact(20));

    let body = expect_too_large(within(buffer(body, 19)).await);
    assert_eq!(polled.load(Ordering::SeqCst), 0);
    assert_eq!(body.size_hint().exact(), Some(20));

    let out = drain(body).await;
    assert_eq!(out.data, b"0123456789abcdefghij");
    // Nothing was buffered, so the inner frames come through as they were.
    assert_eq!(out.data_frames, 2);
}

#[tokio::test]
async fn endless_body_is_bounded_by_the_limit() {
    let polled = Arc::new(AtomicUsize::new(0));
    let body = EndlessBody {
        polled: polled.clone(),
    };
    // 6 frames are 96 bytes, within 100; the 7th crosses.
    let body = expect_too_large(within(buffer(body, 100)).await);
    assert_eq!(polled.load(Ordering::SeqCst), 7);

    let mut body = std::pin::pin!(body);
    let mut replayed = 0;
    while replayed < 200 {
        let frame = next_frame(&mut body)
            .await
            .expect("endless")
            .expect("no error");
        let data = frame.into_data().expect("a data frame");
        assert!(data.iter().all(|&b| b == 7));
        replayed += data.len();
    }
    assert_eq!(replayed, 208);
    assert_eq!(polled.load(Ordering::SeqCst), 13);
}

#[tokio::test]
async fn zero_limit_buffers_nothing() {
    let (body, polled) = ScriptBody::new(data(&[b"a", b"bc"]));
    let body = expect_too_large(within(buffer(body, 0)).await);
    assert_eq!(polled.load(Ordering::SeqCst), 1);
    assert_eq!(drain(body).await.data, b"abc");

    let (body, _) = ScriptBody::new([]);
    let collected = expect_complete(within(buffer(body, 0)).await);
    assert!(collected.data().is_empty());
}

#[tokio::test]
async fn too_large_after_an_error_replays_the_error_too() {
    let mut steps = data(&[b"aaaa", b"bbbb"]);
    steps.push(Step::Error(TestError(7)));
    let (body, _) = ScriptBody::new(steps);
    let body = expect_too_large(within(buffer(body, 5)).await);
    let out = drain(body).await;
    assert_eq!(out.data, b"aaaabbbb");
    assert_eq!(out.error, Some(TestError(7)));
}

// ---- Failed --------------------------------------------------------------

#[tokio::test]
async fn error_midway_replays_the_prefix_then_the_error() {
    let mut steps = data(&[b"first ", b"second"]);
    steps.push(Step::Error(TestError(3)));
    steps.extend(data(&[b"never seen"]));
    let (body, polled) = ScriptBody::new(steps);

    let body = expect_failed(within(buffer(body, 1024)).await);
    assert_eq!(polled.load(Ordering::SeqCst), 3);
    assert!(!body.is_end_stream());

    let out = drain(body).await;
    assert_eq!(out.data, b"first second");
    assert_eq!(out.trailers, None);
    assert_eq!(out.error, Some(TestError(3)));
    assert!(out.ended_after_error);
    // The inner body is not read again.
    assert_eq!(polled.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn error_first_is_failed_with_nothing_to_replay() {
    let (body, _) = ScriptBody::new([Step::Error(TestError(1))]);
    let body = expect_failed(within(buffer(body, 10)).await);
    let out = drain(body).await;
    assert!(out.data.is_empty());
    assert_eq!(out.error, Some(TestError(1)));
    assert!(out.ended_after_error);
}

#[tokio::test]
async fn error_after_trailers_keeps_the_trailers() {
    let mut steps = data(&[b"x"]);
    steps.push(Step::Trailers(grpc_trailers()));
    steps.push(Step::Error(TestError(9)));
    let (body, _) = ScriptBody::new(steps);
    let out = drain(expect_failed(within(buffer(body, 10)).await)).await;
    assert_eq!(out.data, b"x");
    assert_eq!(out.trailers, Some(grpc_trailers()));
    assert_eq!(out.error, Some(TestError(9)));
}

// ---- SharedBody ----------------------------------------------------------

#[tokio::test]
async fn full_yields_data_then_trailers_then_end() {
    let body =
        SharedBody::<ScriptBody>::full(Bytes::from_static(b"payload"), Some(grpc_trailers()));
    let mut body = std::pin::pin!(body);
    assert!(!body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(7));

    let frame = next_frame(&mut body).await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"payload"));
    assert!(!body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));

    let frame = next_frame(&mut body).await.unwrap().unwrap();
    assert_eq!(frame.into_trailers().unwrap(), grpc_trailers());
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));

    assert!(next_frame(&mut body).await.is_none());
    assert!(next_frame(&mut body).await.is_none());
}

#[tokio::test]
async fn full_without_data_or_trailers_is_already_ended() {
    let body = SharedBody::<ScriptBody>::full(Bytes::new(), None);
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
    let out = drain(body).await;
    assert_eq!(out.data_frames, 0);
    assert_eq!(out.trailers, None);

    let body = SharedBody::<ScriptBody>::full(Bytes::new(), Some(grpc_trailers()));
    assert!(!body.is_end_stream());
    let out = drain(body).await;
    assert_eq!(out.data_frames, 0);
    assert_eq!(out.trailers, Some(grpc_trailers()));
}

#[tokio::test]
async fn empty_yields_nothing() {
    for body in [SharedBody::<ScriptBody>::empty(), SharedBody::default()] {
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        let mut body = std::pin::pin!(body);
        assert!(next_frame(&mut body).await.is_none());
        assert!(next_frame(&mut body).await.is_none());
    }
}

#[tokio::test]
async fn streamed_passes_the_inner_body_through() {
    let mut steps = data(&[b"a", b"b"]);
    steps.push(Step::Trailers(grpc_trailers()));
    steps.push(Step::Error(TestError(5)));
    let (body, _) = ScriptBody::new(steps);
    let body = SharedBody::streamed(body.with_hint(SizeHint::with_exact(2)));
    assert_eq!(body.size_hint().exact(), Some(2));
    let out = drain(body).await;
    assert_eq!(out.data, b"ab");
    assert_eq!(out.data_frames, 2);
    assert_eq!(out.trailers, Some(grpc_trailers()));
    assert_eq!(out.error, Some(TestError(5)));
}

#[tokio::test]
async fn replay_size_hint_adds_the_prefix_to_the_rest() {
    let (body, _) = ScriptBody::new(data(&[b"12345", b"678", b"90"]));
    // The rest of the body, after the two frames `buffer` will read, is known
    // to be between 1 and 4 bytes.
    let mut rest_hint = SizeHint::new();
    rest_hint.set_lower(1);
    rest_hint.set_upper(4);
    let body = expect_too_large(within(buffer(body.with_hint(rest_hint), 6)).await);
    assert_eq!(body.size_hint().lower(), 8 + 1);
    assert_eq!(body.size_hint().upper(), Some(8 + 4));
    assert!(!body.is_end_stream());

    let mut body = std::pin::pin!(body);
    let mut seen = 0;
    while seen < 8 {
        let frame = next_frame(&mut body).await.unwrap().unwrap();
        seen += frame.into_data().unwrap().len();
        assert_eq!(body.size_hint().lower(), 8 - seen as u64 + 1);
        assert_eq!(body.size_hint().upper(), Some(8 - seen as u64 + 4));
    }
    let frame = next_frame(&mut body).await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"90"));
    assert!(next_frame(&mut body).await.is_none());
}

#[tokio::test]
async fn replay_then_error_size_hint_has_no_upper_bound() {
    let mut steps = data(&[b"1234", b"56"]);
    steps.push(Step::Error(TestError(2)));
    let (body, _) = ScriptBody::new(steps);
    let body = expect_failed(within(buffer(body, 100)).await);
    // Six bytes are still to come, followed by an error: never an exact
    // length that would make the truncated body look complete.
    assert_eq!(body.size_hint().lower(), 6);
    assert_eq!(body.size_hint().upper(), None);

    let mut body = std::pin::pin!(body);
    let frame = next_frame(&mut body).await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"123456"));
    assert_eq!(body.size_hint().lower(), 0);
    assert!(!body.is_end_stream());
    assert_eq!(
        next_frame(&mut body).await.unwrap().unwrap_err(),
        TestError(2)
    );
    assert!(body.is_end_stream());
    assert!(next_frame(&mut body).await.is_none());
}

#[test]
fn debug_does_not_need_a_debug_body() {
    let body = SharedBody::<ScriptBody>::full(Bytes::from_static(b"abc"), None);
    assert!(format!("{body:?}").contains("Full"));
    let (inner, _) = ScriptBody::new([]);
    assert!(format!("{:?}", SharedBody::streamed(inner)).contains("Streamed"));
    let buffered: Buffered<ScriptBody> = Buffered::Complete(Collected::default());
    assert!(format!("{buffered:?}").contains("Complete"));
}

#[test]
fn auto_traits() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    fn assert_unpin<T: Unpin>() {}

    assert_send::<SharedBody<ScriptBody>>();
    assert_sync::<SharedBody<ScriptBody>>();
    assert_unpin::<SharedBody<ScriptBody>>();
    assert_send::<SharedBody<http_body_util::Full<Bytes>>>();
    assert_sync::<SharedBody<http_body_util::Full<Bytes>>>();
    assert_unpin::<SharedBody<http_body_util::Full<Bytes>>>();
    assert_send::<Buffered<ScriptBody>>();
    assert_sync::<Buffered<ScriptBody>>();
    assert_send::<Collected>();
    assert_sync::<Collected>();

    // The buffering future can be spawned on a multi-threaded runtime.
    fn assert_send_future<F: Future + Send>(_: F) {}
    let (body, _) = ScriptBody::new([]);
    assert_send_future(buffer(body, 10));
}

// ---- Property: replay is exact, the outcome follows the limit ------------

#[derive(Clone, Debug)]
struct Case {
    frames: Vec<Vec<u8>>,
    trailers: bool,
    /// The error comes before frame `i` (after the trailers if `i` is the
    /// number of frames).
    error_at: Option<usize>,
    limit: usize,
    /// Whether the body announces its exact length.
    exact_hint: bool,
    pending: Vec<bool>,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..10),
        any::<bool>(),
        prop::option::of(0usize..=10),
        0usize..300,
        any::<bool>(),
        prop::collection::vec(any::<bool>(), 12),
    )
        .prop_map(|(frames, trailers, error_at, limit, exact_hint, pending)| {
            let error_at = error_at.map(|i| i.min(frames.len()));
            Case {
                frames,
                trailers,
                error_at,
                limit,
                exact_hint: exact_hint && error_at.is_none(),
                pending,
            }
        })
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Complete,
    TooLarge,
    Failed,
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let total: usize = case.frames.iter().map(Vec::len).sum();
    let mut steps = Vec::new();
    for (i, frame) in case.frames.iter().enumerate() {
        if case.error_at == Some(i) {
            steps.push(Step::Error(TestError(i as u32)));
        }
        if case.pending[i] {
            steps.push(Step::Pending);
        }
        steps.push(Step::Data(Bytes::from(frame.clone())));
    }
    if case.trailers {
        steps.push(Step::Trailers(grpc_trailers()));
    }
    if case.error_at == Some(case.frames.len()) {
        steps.push(Step::Error(TestError(case.frames.len() as u32)));
    }
    let (body, polled) = ScriptBody::new(steps);
    let body = if case.exact_hint {
        body.with_hint(SizeHint::with_exact(total as u64))
    } else {
        body
    };

    // The model: which outcome, and how many frames `buffer` reads.
    let (expected, expected_polled) = if case.exact_hint && total > case.limit {
        (Outcome::TooLarge, 0)
    } else {
        let mut acc = 0;
        let mut outcome = None;
        for (i, frame) in case.frames.iter().enumerate() {
            if case.error_at == Some(i) {
                outcome = Some((Outcome::Failed, i + 1));
                break;
            }
            if !frame.is_empty() && acc + frame.len() > case.limit {
                outcome = Some((Outcome::TooLarge, i + 1));
                break;
            }
            acc += frame.len();
        }
        outcome.unwrap_or_else(|| {
            let n = case.frames.len() + usize::from(case.trailers);
            if case.error_at.is_some() {
                (Outcome::Failed, n + 1)
            } else {
                (Outcome::Complete, n)
            }
        })
    };
    prop_assert_eq!(
        expected == Outcome::Complete,
        total <= case.limit && case.error_at.is_none()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let (outcome, out) = runtime.block_on(async {
        let buffered = within(buffer(body, case.limit)).await;
        let outcome = match &buffered {
            Buffered::Complete(_) => Outcome::Complete,
            Buffered::TooLarge(_) => Outcome::TooLarge,
            Buffered::Failed(_) => Outcome::Failed,
        };
        if let Buffered::Complete(collected) = &buffered {
            assert!(collected.data().len() <= case.limit);
        }
        assert_eq!(polled.load(Ordering::SeqCst), expected_polled);
        (outcome, drain(buffered.into_body()).await)
    });
    prop_assert_eq!(outcome, expected);

    // The client receives what the inner body would have given it.
    let upto = case.error_at.unwrap_or(case.frames.len());
    prop_assert_eq!(out.data, case.frames[..upto].concat());
    let trailers_sent = case.trailers && case.error_at.is_none_or(|i| i == case.frames.len());
    prop_assert_eq!(out.trailers, trailers_sent.then(grpc_trailers));
    prop_assert_eq!(out.error, case.error_at.map(|i| TestError(i as u32)));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn replay_is_exact_and_complete_iff_within_limit(case in cases()) {
        run_case(&case)?;
    }
}
