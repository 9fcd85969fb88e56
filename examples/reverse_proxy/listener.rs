//! The client side: an accept loop that outlives its errors, and
//! connections bounded in time.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::settings::Settings;

/// Accepts connections until the process ends. A failed `accept` (out of
/// file descriptors, say) is logged and retried after a pause that doubles
/// up to a second, as Go's `net/http` does: connections already open keep
/// being served and close meanwhile.
pub(crate) async fn serve<H, F, B>(listener: TcpListener, settings: &Settings, handle: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut server = auto::Builder::new(TokioExecutor::new());
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    server.http2().timer(TokioTimer::new());
    let server = Arc::new(server);
    let silence = Silence {
        before_first_request: settings.header_timeout,
        between_requests: settings.idle_timeout,
    };
    let mut pause = Backoff::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                pause.reset();
                let (server, handle) = (server.clone(), handle.clone());
                tokio::spawn(async move {
                    serve_connection(&server, stream, silence, handle).await;
                });
            }
            Err(error) => {
                let wait = pause.next();
                eprintln!(
                    "accept failed: {error}; retrying in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Doubling pauses between failed accepts, from 5 ms to 1 s.
#[derive(Debug, Default)]
struct Backoff(Option<Duration>);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn next(&mut self) -> Duration {
        let wait = self.0.map_or(Self::FIRST, |last| (last * 2).min(Self::MAX));
        self.0 = Some(wait);
        wait
    }

    fn reset(&mut self) {
        self.0 = None;
    }
}

/// Serves one connection (HTTP/1.1 or h2c). hyper bounds the wait for each
/// HTTP/1 request head; on both protocols, a connection that has no
/// request in flight for too long ([`Silence`]) is shut down gracefully.
async fn serve_connection<H, F, B>(
    server: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    silence: Silence,
    handle: H,
) where
    H: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let in_flight = InFlight::default();
    let counted = in_flight.clone();
    let service = hyper::service::service_fn(move |request| {
        let request_guard = counted.enter();
        let answer = handle(request);
        async move {
            let answer = answer.await;
            drop(request_guard);
            answer
        }
    });
    let connection = server.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = in_flight.silent_for(silence) => {
            connection.as_mut().graceful_shutdown();
            // Ending a silent connection is the bound at work, not news.
            let _ = connection.await;
            return;
        }
    };
    if let Err(error) = result {
        // Nor is hyper's header timeout.
        let timed_out = error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout);
        if !timed_out {
            eprintln!("connection error: {error}");
        }
    }
}

/// How long a connection may have no request in flight.
#[derive(Clone, Copy, Debug)]
struct Silence {
    /// From accepting it to its first request (whatever the protocol, so a
    /// client cannot hold a connection by sending nothing, or half of the
    /// HTTP/2 preface).
    before_first_request: Duration,
    /// After a request is answered, until the next.
    between_requests: Duration,
}

/// What a connection is doing, as its requests come and go.
#[derive(Debug, Default)]
struct Activity {
    /// Requests being answered.
    in_flight: usize,
    /// Whether any request has arrived yet.
    any: bool,
}

/// A connection's [`Activity`], watched for silences.
#[derive(Clone, Debug, Default)]
struct InFlight(Arc<watch::Sender<Activity>>);

/// One request being answered.
#[derive(Debug)]
struct RequestGuard(InFlight);

impl InFlight {
    fn enter(&self) -> RequestGuard {
        self.0.send_modify(|activity| {
            activity.in_flight += 1;
            activity.any = true;
        });
        RequestGuard(self.clone())
    }

    /// Returns once the connection has been silent longer than `silence`
    /// allows. (The state, not its changes, says whether a request has come
    /// yet: one may arrive before this is first polled.)
    async fn silent_for(&self, silence: Silence) {
        let mut activity = self.0.subscribe();
        loop {
            let allowed = match activity.wait_for(|now| now.in_flight == 0).await {
                Ok(now) if now.any => silence.between_requests,
                Ok(_) => silence.before_first_request,
                Err(_) => return, // The sender lives in `self`: not reached.
            };
            if tokio::time::timeout(allowed, activity.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.0.send_modify(|activity| activity.in_flight -= 1);
    }
}
