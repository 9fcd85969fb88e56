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

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{AGE, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body;
use shared_calls_tower::{Fetch, Leader};

use crate::body::SharedBody;
use crate::cache_control::VaryKey;
use crate::framing::{self, Framing};
use crate::freshness::{self, Reading, Reason, Rules, Says, Storability};
use crate::grpc;
use crate::policy::{HttpContext, HttpPolicy};
use crate::revalidate;
use crate::shared::{Failure, HttpFailure, HttpShared, Shared, StoredResponse, TakeOnce};
use crate::tee::{Pumped, TeeReader, tee};

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
    let (parts, body) = response.into_parts();
    let no_headers = HeaderMap::new();
    let request_headers = context.headers.as_deref().unwrap_or(&no_headers);
    if let Some(HttpShared(Shared::Complete(kept))) = &context.revalidating {
        if parts.status == StatusCode::NOT_MODIFIED {
            // A `304` that identifies another answer is not applied, and
            // the next refresh fetches `kept` whole.
            if !revalidate::confirms(&parts.headers, kept) {
                revalidate::unidentified(kept);
                return Err(HttpFailure(Failure::Broken));
            }
            return freshen::<B>(policy, kept, &parts, context, request_headers);
        }
        if context.method == Method::HEAD {
            return head_refresh(policy, kept, parts, body, context, request_headers);
        }
    }
    // RFC 9111 §4.2.3: the response time is when the head arrived; the
    // time its body took counts in the stored answer's age.
    let received = Instant::now();
    let head = Head::analyze(policy.rules(), context, &parts, request_headers);
    if head.own_client_only {
        return own_client_only(&head, parts, body);
    }
    let (reader, pump) = tee(body, policy.buffer_limit());
    let mut pumping = pin!(pump.run());
    // A small answer often comes with its head, its body complete at the
    // first look: the leader is then answered from the shared answer like
    // the others, and needs no streamed response of its own (unless the
    // shared answer goes without fields its own client gets).
    let at_once = poll_fn(|cx| Poll::Ready(pumping.as_mut().poll(cx))).await;
    let (pumped, own) = match at_once {
        Poll::Ready(complete @ Pumped::Complete(_)) if head.stripped.is_empty() => (complete, None),
        at_once => {
            let own = answer_leader(policy, &head, &parts, reader, leader, context);
            let pumped = match at_once {
                Poll::Ready(pumped) => pumped,
                Poll::Pending => pumping.await,
            };
            (pumped, own)
        }
    };
    let collected = match pumped {
        Pumped::Complete(collected) => collected,
        Pumped::TooLarge if !head.failed => {
            let released = HttpShared(Shared::OwnClientOnly(TakeOnce::taken()));
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
    let grpc_failed =
        grpc::is_grpc(&parts.headers) && !grpc::succeeded(&parts.headers, collected.trailers());
    let in_transit = received.elapsed();
    let age = head.initial_age + in_transit;
    let mut parts = parts;
    // RFC 9111 §5.2.2.4, §5.2.2.7: what others receive goes without the
    // fields a qualified `no-cache` or `private` names.
    let mut stripped = false;
    for name in &head.stripped {
        stripped |= parts.headers.remove(name).is_some();
    }
    let mut stored = StoredResponse::new(parts, collected, head.vary.clone(), age);
    stored.stripped = stripped;
    if head.failed || grpc_failed {
        return Err(HttpFailure(Failure::Status(stored.into())));
    }
    let keep = policy.revalidation_window();
    Ok(head.fetch(
        HttpShared(Shared::Complete(stored.into())),
        in_transit,
        keep,
    ))
}

/// The leader's own response, reading the body as it is buffered: sent to
/// the leader at once, or, for a failure, returned to be answered when its
/// body is in (a stale entry may answer its leader too). Nobody waits for a
/// background refresh: it only fills the cache.
fn answer_leader<B>(
    policy: &HttpPolicy,
    head: &Head,
    parts: &http::response::Parts,
    reader: TeeReader<B>,
    leader: Leader<Response<SharedBody<B>>>,
    context: &HttpContext,
) -> Option<Response<SharedBody<B>>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
{
    let mut own_parts = parts.clone();
    framing::streamed_headers(&mut own_parts.headers);
    let own = Response::from_parts(own_parts, SharedBody::tee(reader));
    if head.failed {
        return Some(own);
    }
    let answer = leader.answer();
    drop(leader.send(policy.leader_response(own, &answer, context)));
    None
}

/// The origin's answer to a `HEAD` that refreshed `kept` (RFC 9111 §4.3.5):
/// a `200` that identifies `kept` freshens it like a `304`; any other
/// answer reaches the `HEAD`'s own client only and is never stored (the
/// key is then passed until a `GET` stores it anew), a failure being
/// shared as failures are.
fn head_refresh<B>(
    policy: &HttpPolicy,
    kept: &StoredResponse,
    parts: http::response::Parts,
    body: B,
    context: &HttpContext,
    request_headers: &HeaderMap,
) -> Result<Fetch<HttpShared>, HttpFailure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
{
    if parts.status == StatusCode::OK && revalidate::identifies(&parts.headers, kept) {
        return freshen::<B>(policy, kept, &parts, context, request_headers);
    }
    let failed = parts.status.is_server_error();
    let response = TakeOnce::new(Response::from_parts(parts, SharedBody::streamed(body)));
    match failed {
        true => Err(HttpFailure(Failure::Error(response))),
        false => Ok(Fetch::value(HttpShared(Shared::OwnClientOnly(response))).do_not_store()),
    }
}

/// `kept` freshened by the answer to its refresh (a `304`, or a `HEAD`'s
/// `200`) that identifies it: every waiter receives it with the merged
/// fields and its stored body (RFC 9111 §4.3.3, §4.3.4).
fn freshen<B>(
    policy: &HttpPolicy,
    kept: &StoredResponse,
    update: &http::response::Parts,
    context: &HttpContext,
    request_headers: &HeaderMap,
) -> Result<Fetch<HttpShared>, HttpFailure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
{
    // Freshness from the merged fields, aged by the update's own `Age`
    // (which, as in every stored answer, is not kept).
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = kept.status;
    parts.version = kept.version;
    parts.headers = revalidate::merged_headers(&kept.headers(), &update.headers);
    for age in update.headers.get_all(AGE) {
        parts.headers.append(AGE, age.clone());
    }
    let head = Head::analyze(policy.rules(), context, &parts, request_headers);
    let mut merged = parts.headers;
    merged.remove(AGE);
    for name in &head.stripped {
        merged.remove(name);
    }
    let freshened = kept.freshened(merged, head.vary.clone(), head.initial_age);
    if head.own_client_only {
        // The origin now says the answer is not for sharing.
        let response = freshened.to_response::<B>(true);
        let own = HttpShared(Shared::OwnClientOnly(TakeOnce::new(response)));
        return Ok(Fetch::value(own).do_not_store());
    }
    let keep = policy.revalidation_window();
    Ok(head.fetch(
        HttpShared(Shared::Complete(freshened.into())),
        Duration::ZERO,
        keep,
    ))
}

/// An answer for its own client only, untouched: the others call on their
/// own, or, for a failure, get a 502 or the stale answer (a failure never
/// replaces a good stale entry with a hit-for-miss marker).
fn own_client_only<B>(
    head: &Head,
    mut parts: http::response::Parts,
    body: B,
) -> Result<Fetch<HttpShared>, HttpFailure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
{
    let contradictory = head.framing == Framing::Contradictory;
    if contradictory {
        framing::drop_framing(&mut parts.headers);
    }
    let response = TakeOnce::new(Response::from_parts(parts, SharedBody::streamed(body)));
    match head.failed || contradictory {
        true => Err(HttpFailure(Failure::Error(response))),
        false => Ok(Fetch::value(HttpShared(Shared::OwnClientOnly(response))).do_not_store()),
    }
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
    /// Fields the stored copy goes without.
    stripped: Vec<http::HeaderName>,
    /// It has a validator: kept past its freshness for revalidation.
    validated: bool,
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
        let response = Reading::of(parts.status, &parts.headers);
        let analysis = freshness::analyze(
            rules,
            &method,
            request_headers,
            &response,
            SystemTime::now(),
        );
        let failed = parts.status.is_server_error();
        let framing = Framing::of(&parts.headers);
        let own_client_only = analysis.own_client_only
            || reaches_its_own_client_only(&analysis.storability)
            // A failure is answered to its waiters without a `Vary` check.
            || (failed && analysis.vary.is_some())
            || framing == Framing::Contradictory
            || is_event_stream(&parts.headers)
            // A part of a representation is no answer for anyone else (§3.3).
            || parts.status == StatusCode::PARTIAL_CONTENT;
        let initial_age = match &analysis.storability {
            Storability::Store(freshness) => freshness.initial_age,
            Storability::DoNotStore(_) => Duration::ZERO,
        };
        Self {
            vary: analysis.vary.map(|vary| vary.capture(request_headers)),
            storability: analysis.storability,
            says: analysis.says,
            framing,
            failed,
            own_client_only,
            initial_age,
            stripped: analysis.stripped,
            validated: revalidate::has_validator(&parts.headers),
        }
    }

    /// How the cache stores a shareable answer.
    /// `in_transit`: how long the body took after the head, already part
    /// of the answer's age. `keep`: how long an answer with a validator is
    /// kept for revalidation once expired.
    fn fetch(self, shared: HttpShared, in_transit: Duration, keep: Duration) -> Fetch<HttpShared> {
        let Storability::Store(freshness) = self.storability else {
            return Fetch::value(shared).do_not_store();
        };
        let fetch = match self.says.negative {
            true => Fetch::negative(shared),
            false => Fetch::value(shared),
        };
        // What the response (or the configured rules) does not say is left
        // to the cache: the layer's `ttl` (`negative_ttl` for a `404`) and
        // stale windows.
        let mut fetch = fetch;
        if freshness.ttl.is_zero() {
            // `no-cache`, or stale on arrival: never fresh, nor given the
            // cache's default TTL or jittered into freshness. With a
            // validator it is revalidated on every use (§5.2.2.4); without
            // one it is kept only for its stale windows.
            fetch = match self.validated {
                true => fetch.always_revalidate().keep_for_revalidation(keep),
                false => fetch.ttl(Duration::ZERO),
            };
        } else {
            if self.validated {
                fetch = fetch.keep_for_revalidation(keep);
            }
            if self.says.ttl {
                let ttl = freshness.ttl.saturating_sub(in_transit);
                fetch = if self.says.ttl_is_explicit {
                    fetch.ttl(ttl)
                } else {
                    fetch.heuristic_ttl(ttl)
                };
            }
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

/// Answers not to be seen by other users (meant for one user, or setting
/// cookies), and answers not to be reused without a revalidation they have
/// no validator for: the requests waiting for them make their own calls.
fn reaches_its_own_client_only(storability: &Storability) -> bool {
    matches!(
        storability,
        Storability::DoNotStore(
            Reason::NoStore
                | Reason::Private
                | Reason::SetCookie
                | Reason::Authorization
                | Reason::Cookie
                | Reason::VaryAny
                | Reason::Vary
                | Reason::NoCache
                | Reason::StaleOnArrival
                | Reason::InvalidHeader("expires")
        )
    )
}

/// An event stream (server-sent events) never ends by design: it goes to
/// its own client untouched, and nothing of it is buffered.
fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= 17 && value[..17].eq_ignore_ascii_case(b"text/event-stream")
    })
}
