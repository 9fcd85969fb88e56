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
    let idle_timeout = settings.idle_timeout;
    let mut pause = Backoff::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                pause.reset();
                let (server, handle) = (server.clone(), handle.clone());
                tokio::spawn(async move {
                    serve_connection(&server, stream, idle_timeout, handle).await;
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
/// HTTP/1 request head; a connection with no request in flight for
/// `idle_timeout` is shut down gracefully (a silent new connection, a
/// kept-alive or HTTP/2 one that sends nothing more).
async fn serve_connection<H, F, B>(
    server: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    idle_timeout: Duration,
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
        () = in_flight.idle_for(idle_timeout) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        eprintln!("connection error: {error}");
    }
}

/// The number of requests a connection is answering.
#[derive(Clone, Debug, Default)]
struct InFlight(Arc<watch::Sender<usize>>);

/// One request being answered.
#[derive(Debug)]
struct RequestGuard(InFlight);

impl InFlight {
    fn enter(&self) -> RequestGuard {
        self.0.send_modify(|count| *count += 1);
        RequestGuard(self.clone())
    }

    /// Returns once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let mut count = self.0.subscribe();
        loop {
            // The sender lives in `self`: waiting cannot fail.
            let _ = count.wait_for(|count| *count == 0).await;
            if tokio::time::timeout(timeout, count.changed())
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
        self.0.0.send_modify(|count| *count -= 1);
    }
}
