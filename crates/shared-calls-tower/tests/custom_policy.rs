//! A policy written outside the crate (the README's example): responses
//! carry their own freshness, a zero one is not stored, and every answer
//! tells its caller what happened.

mod support;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use shared_calls_tower::{
    Admission, CachingLayer, Fetch, Leader, Outcome, Policy, Reply, ServicePolicy, SharedError,
};
use support::{bounded, join_all};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A page, and how long it stays fresh; zero: never store it.
#[derive(Debug, Clone, PartialEq)]
struct Page {
    body: Arc<str>,
    max_age: Duration,
}

#[derive(Debug, Clone, Default)]
struct Pages;

impl Policy for Pages {
    type Key = String;
    type Shared = Page;
    type Failure = Arc<io::Error>;

    fn weigh(&self, page: &Page) -> u32 {
        u32::try_from(page.body.len()).unwrap_or(u32::MAX)
    }
}

impl<S> ServicePolicy<String, S> for Pages
where
    S: Service<String, Response = Page, Error = io::Error>,
{
    /// The page, and how it was obtained.
    type Response = (Page, Outcome);
    type Error = SharedError<io::Error>;
    type Context = ();
    type Share = std::future::Ready<Result<Fetch<Page>, Arc<io::Error>>>;

    fn admit(&self, _: &String) -> Admission<()> {
        Admission::Share(())
    }

    fn share(&self, result: io::Result<Page>, _: &(), _: Leader<(Page, Outcome)>) -> Self::Share {
        let fetch = result.map_err(Arc::new).map(|page| {
            let max_age = page.max_age;
            match max_age.is_zero() {
                true => Fetch::value(page).do_not_store(),
                false => Fetch::value(page).ttl(max_age),
            }
        });
        std::future::ready(fetch)
    }

    fn respond(
        &self,
        reply: Reply<'_, String, S, Self>,
        _: &(),
    ) -> Result<(Page, Outcome), Self::Error> {
        match reply {
            Reply::Hit { shared, answer } => Ok((shared, answer.outcome)),
            Reply::Shared { shared, answer } => Ok((shared.clone(), answer.outcome)),
            Reply::Failed { failure, .. } => Err(SharedError::Inner(failure.clone())),
            Reply::Rejected(rejected) => Err(SharedError::Rejected(rejected)),
            Reply::Own { result, answer } => result
                .map(|page| (page, answer.outcome))
                .map_err(|error| SharedError::Inner(Arc::new(error))),
        }
    }
}

/// A backend whose `/live` page must not be stored and whose other pages
/// stay fresh for five seconds; it counts its calls.
fn pages(
    calls: Arc<std::sync::atomic::AtomicUsize>,
) -> impl Service<
    String,
    Response = Page,
    Error = io::Error,
    Future = impl Future<Output = Result<Page, io::Error>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(move |path: String| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            tokio::task::yield_now().await;
            let max_age = match path.as_str() {
                "/live" => Duration::ZERO,
                _ => Duration::from_secs(5),
            };
            Ok(Page {
                body: format!("page {path}").into(),
                max_age,
            })
        }
    })
}

fn layer() -> CachingLayer<fn(&String) -> Option<String>, Pages> {
    CachingLayer::new((|path: &String| Some(path.clone())) as fn(&String) -> Option<String>)
        .jitter(0.0)
}

/// Concurrent requests report one miss and the rest collapsed; then hits,
/// until the page's own TTL ends.
#[tokio::test(start_paused = true)]
async fn outcomes_and_the_responses_own_ttl() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let service = layer().layer(pages(calls.clone()));
    let calls = move || calls.load(std::sync::atomic::Ordering::SeqCst);

    let first = bounded(service.clone().oneshot("/a".to_owned()))
        .await
        .unwrap();
    assert_eq!(first.0.body.as_ref(), "page /a");
    assert_eq!(first.1, Outcome::Miss);

    tokio::time::advance(Duration::from_millis(4_999)).await;
    let hit = bounded(service.clone().oneshot("/a".to_owned()))
        .await
        .unwrap();
    assert_eq!((hit.1, calls()), (Outcome::Hit, 1));

    tokio::time::advance(Duration::from_millis(1)).await;
    let again = bounded(service.clone().oneshot("/a".to_owned()))
        .await
        .unwrap();
    assert_eq!(
        (again.1, calls()),
        (Outcome::Miss, 2),
        "the page's TTL ended"
    );
}

/// A page that must not be stored is shared with the requests waiting for
/// it, and the next request calls again (without queueing: a pass).
#[tokio::test(start_paused = true)]
async fn an_unstorable_page_is_shared_but_not_stored() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let service = layer().layer(pages(calls.clone()));
    let calls = move || calls.load(std::sync::atomic::Ordering::SeqCst);

    let mut outcomes: Vec<Outcome> = Vec::new();
    let entered = Arc::new(tokio::sync::Semaphore::new(0));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (service, entered) = (service.clone(), entered.clone());
            tokio::spawn(support::signal_entered(
                service.oneshot("/live".to_owned()),
                entered,
            ))
        })
        .collect();
    support::until_entered(&entered, 4).await;
    for result in join_all(callers).await {
        outcomes.push(result.unwrap().1);
    }
    outcomes.sort_by_key(|outcome| outcome.as_str());
    assert_eq!(
        outcomes,
        [
            Outcome::Collapsed,
            Outcome::Collapsed,
            Outcome::Collapsed,
            Outcome::Miss
        ]
    );
    assert_eq!(calls(), 1);

    let next = bounded(service.clone().oneshot("/live".to_owned()))
        .await
        .unwrap();
    assert_eq!((next.1, calls()), (Outcome::Pass, 2));
}
