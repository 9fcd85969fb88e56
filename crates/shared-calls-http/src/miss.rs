//! A miss in HTTP terms: whether and how an answer is shared is decided on
//! its head; a shareable body streams to the leader's client while it is
//! buffered for the others and the store.
//!
//! Waiting requests receive the answer once its body is complete: that keeps
//! one point where an answer is checked (its framing against the bytes that
//! came) and stored, and gives every follower a response with an exact
//! `Content-Length`. A follower's first byte thus comes when the leader's
//! last byte does; the leader's client, the only one that could not have
//! been answered sooner, gets its head and bytes as they arrive.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Response};
use http_body::Body;
use shared_calls_tower::{Fetch, Leader};

use crate::body::SharedBody;
use crate::cache_control::{self, CacheControl, VaryError, VaryKey};
use crate::framing::{self, Framing};
use crate::freshness::{self, Reason, Rules, Storability};
use crate::grpc;
use crate::policy::{HttpContext, HttpPolicy};
use crate::shared::{Failure, HttpFailure, HttpShared, Shared, StoredResponse, TakeOnce};
use crate::tee::{Pumped, tee};

/// Turns the leader's response into what its waiters receive and how the
/// cache stores it, answering the leader on the way.
pub(crate) async fn share<B>(
    policy: &HttpPolicy,
    response: Response<B>,
    context: &HttpContext,
    leader: Leader<Response<SharedBody<B>>>,
) -> Result<Fetch<HttpShared>, HttpFailure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
{
    let (mut parts, body) = response.into_parts();
    let request_headers = context.headers.clone().unwrap_or_default();
    let head = Head::analyze(policy.rules(), context, &parts, &request_headers);
    if head.own_client_only {
        if head.framing == Framing::Contradictory {
            framing::drop_framing(&mut parts.headers);
        }
        let response = TakeOnce::new(Response::from_parts(parts, SharedBody::streamed(body)));
        // A failure never replaces a good stale entry with a hit-for-miss
        // marker: the others get a 502, or the stale answer.
        return match head.failed || head.framing == Framing::Contradictory {
            true => Err(HttpFailure(Failure::Error(response))),
            false => Ok(Fetch::value(HttpShared(Shared::Unshared(response))).do_not_store()),
        };
    }
    let (reader, pump) = tee(body, policy.buffer_limit());
    let own = Response::from_parts(parts.clone(), SharedBody::tee(reader));
    // A failure is answered when its body is in, so that a stale entry may
    // answer its leader too; any other answer goes to the leader at once.
    // Nobody waits for a background refresh: it only fills the cache.
    let own = match head.failed {
        true => Some(own),
        false => {
            let answer = leader.answer();
            drop(leader.send(policy.leader_response(own, &answer, &context.method)));
            None
        }
    };
    let collected = match pump.run().await {
        Pumped::Complete(collected) => collected,
        Pumped::TooLarge if !head.failed => {
            let released = HttpShared(Shared::Unshared(TakeOnce::taken()));
            return Ok(Fetch::value(released).do_not_store());
        }
        Pumped::TooLarge | Pumped::Failed => {
            return Err(HttpFailure(match own {
                Some(own) => Failure::Error(TakeOnce::new(own)),
                None => Failure::Broken,
            }));
        }
    };
    if !head.framing.agrees_with(collected.data().len()) {
        return Err(HttpFailure(Failure::Broken));
    }
    let grpc_failed = grpc::is_grpc_response(&parts.headers)
        && !grpc::succeeded(&parts.headers, collected.trailers());
    let stored = StoredResponse::new(parts, collected, head.vary.clone(), head.initial_age);
    if head.failed || grpc_failed {
        return Err(HttpFailure(Failure::Status(stored.into())));
    }
    Ok(head.fetch(HttpShared(Shared::Complete(stored.into()))))
}

/// What the head of an answer decides.
struct Head {
    storability: Storability,
    says: Says,
    vary: Option<VaryKey>,
    framing: Framing,
    /// A server error: shared with the current waiters, never stored.
    failed: bool,
    /// Meant for the leader's client only: the others call on their own.
    own_client_only: bool,
    initial_age: Duration,
}

impl Head {
    fn analyze(
        rules: &Rules,
        context: &HttpContext,
        parts: &http::response::Parts,
        request_headers: &HeaderMap,
    ) -> Self {
        // A HEAD leader fetched the GET; a unary gRPC call reads like one.
        let method = match context.method == Method::HEAD || context.grpc {
            true => Method::GET,
            false => context.method.clone(),
        };
        let headers = &parts.headers;
        let storability = freshness::storability(
            rules,
            &method,
            request_headers,
            parts.status,
            headers,
            SystemTime::now(),
        );
        let vary = match cache_control::vary(headers) {
            Ok(vary) => (!vary.is_empty()).then(|| vary.capture(request_headers)),
            Err(VaryError::Any | VaryError::TooMany | VaryError::Malformed) => None,
        };
        let failed = parts.status.is_server_error();
        let framing = Framing::of(headers);
        let private = matches!(
            storability,
            Storability::DoNotStore(
                Reason::NoStore
                    | Reason::Private
                    | Reason::SetCookie
                    | Reason::Authorization
                    | Reason::Cookie
                    | Reason::VaryAny
                    | Reason::Vary
            )
        ) || freshness::for_its_client_only(rules, headers);
        // Not to be reused without revalidation, which this cache does not
        // do: waiting requests make their own calls.
        let must_revalidate = matches!(
            storability,
            Storability::DoNotStore(
                Reason::NoCache | Reason::StaleOnArrival | Reason::InvalidHeader("expires")
            )
        );
        let own_client_only = private
            || must_revalidate
            // A failure is answered to its waiters without a `Vary` check.
            || (failed && vary.is_some())
            || framing == Framing::Contradictory
            || is_event_stream(headers);
        let initial_age = match &storability {
            Storability::Store(freshness) => freshness.initial_age,
            Storability::DoNotStore(_) => Duration::ZERO,
        };
        Self {
            says: Says::of(rules, parts.status, headers),
            storability,
            vary,
            framing,
            failed,
            own_client_only,
            initial_age,
        }
    }

    /// How the cache stores a shareable answer.
    fn fetch(self, shared: HttpShared) -> Fetch<HttpShared> {
        let fetch = Fetch::value(shared);
        let Storability::Store(freshness) = self.storability else {
            return fetch.do_not_store();
        };
        // What the response (or the configured rules) does not say is left
        // to the cache: the layer's `ttl` and stale windows.
        let mut fetch = fetch;
        if self.says.ttl {
            fetch = fetch.ttl(freshness.ttl);
        }
        if self.says.stale_while_revalidate {
            fetch = fetch.stale_while_revalidate(freshness.stale_while_revalidate);
        }
        if self.says.stale_if_error {
            fetch = fetch.stale_if_error(freshness.stale_if_error);
        }
        fetch
    }
}

/// An event stream (server-sent events) never ends by design: it goes to
/// its own client untouched, and nothing of it is buffered.
fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= 17 && value[..17].eq_ignore_ascii_case(b"text/event-stream")
    })
}

/// Which lifetimes a stored response sets itself, over the cache's settings.
#[derive(Debug, Clone, Copy)]
struct Says {
    ttl: bool,
    stale_while_revalidate: bool,
    stale_if_error: bool,
}

impl Says {
    fn of(rules: &Rules, status: http::StatusCode, headers: &HeaderMap) -> Self {
        let cc = CacheControl::from_headers_lenient(headers);
        let explicit = cc.s_maxage().is_some()
            || cc.max_age().is_some()
            || headers.contains_key(http::header::EXPIRES);
        // RFC 9111 §4.2.4: these forbid serving stale whatever the cache's settings.
        let no_stale = cc.must_revalidate()
            || cc.proxy_revalidate()
            || cc.s_maxage().is_some()
            || cc.no_cache();
        Self {
            ttl: explicit || rules.heuristic_ttl_configured(status),
            stale_while_revalidate: no_stale || cc.stale_while_revalidate().is_some(),
            stale_if_error: no_stale || cc.stale_if_error().is_some(),
        }
    }
}
