//! The HTTP policy of shared-calls: put `.layer(SharedCallsLayer::new(key_fn))`
//! in front of an axum `Router`, a hyper service or a tonic `Channel`, and
//! concurrent identical requests reach the backend once, while fresh
//! answers are kept per RFC 9111's rules for a shared cache.
//!
//! In front of a whole `Router`, every route is cached: answers that set no
//! freshness (a health page, say) are kept for the layer's `ttl`, and `404`
//! and `410` for its `negative_ttl` (10 s, or `ttl` if shorter).
//! [`Rules::explicit_freshness_only`](freshness::Rules::explicit_freshness_only)
//! stores only the answers that say `max-age`, `s-maxage` or `Expires`;
//! axum's `route_layer` caches chosen routes only.
//!
//! - [`HttpPolicy`]: admission ([`admission`]: only `GET`/`HEAD`; no
//!   credentials unless keyed, no ranges, no preconditions meant for the
//!   origin such as `If-Match`), storability and
//!   freshness ([`freshness`], [`cache_control`]), body buffering up to a
//!   limit with trailers ([`body`]), and what every answer says about itself.
//! - [`default_key`]: scheme, authority, path and query.
//! - [`BufferRequestLayer`] and [`grpc_key`]: unary gRPC calls keyed by their
//!   request message.
//!
//! Every response carries an [`Outcome`] extension and, unless turned off,
//! an RFC 9211 `Cache-Status` header:
//!
//! | outcome | `Cache-Status` | `X-Cache-Status` |
//! |---|---|---|
//! | hit | `shared-calls; hit; ttl=42` | `HIT` |
//! | hit from the fleet's second tier | `shared-calls; hit; ttl=42; detail=l2` | `HIT` |
//! | miss, stored | `shared-calls; fwd=miss; stored; ttl=60` | `MISS` |
//! | collapsed | `shared-calls; fwd=miss; collapsed; stored; ttl=60` | `HIT` |
//! | revalidated (the origin's `304` freshened a kept answer) | `shared-calls; fwd=stale; fwd-status=304; stored; ttl=60; detail=revalidated` | `REVALIDATED` |
//! | revalidated, collapsed | `shared-calls; fwd=stale; fwd-status=304; collapsed; stored; ttl=60; detail=revalidated` | `REVALIDATED` |
//! | revalidation failed (inner error, no stale-if-error) | `shared-calls; fwd=miss; collapsed; detail=revalidation-failed` (a `504`) | `HIT` |
//! | stale-while-revalidate | `shared-calls; hit; fwd=stale; detail=stale-while-revalidate` | `UPDATING` |
//! | stale-if-error | `shared-calls; fwd=stale; detail=stale-if-error` | `STALE` |
//! | hit-for-miss | `shared-calls; fwd=miss; detail=hit-for-miss` | `MISS` |
//! | lock timeout | `shared-calls; fwd=miss; detail=lock-timeout` | `MISS` |
//! | bypass | `shared-calls; fwd=bypass; detail=method` | `BYPASS` |
//! | `only-if-cached`, nothing fresh stored (a `504`) | `shared-calls; detail=only-if-cached` | `MISS` |
//!
//! A client's own `If-None-Match` or `If-Modified-Since` is answered by the
//! cache (RFC 9111 §4.3.2): the answer it gives (a hit, a collapsed answer,
//! or the leader's own, once its head is in) becomes a `304` with `ETag`,
//! `Cache-Control`, `Date`, `Expires`, `Vary`, `Content-Location` (and
//! `Last-Modified` without an `ETag`), `Age` and `Cache-Status` when it is a
//! `2xx` that satisfies them (`If-None-Match` first, compared weakly, `*`
//! matching any), and is sent whole otherwise. The conditions never reach
//! the inner service on a call that others may share: it always fetches the
//! full answer. An answer meant for its own client only goes to it as the
//! origin sent it. A request with `Cache-Control: only-if-cached` never
//! calls the inner service: it gets a fresh stored answer or a `504`. A
//! client's `max-age`, `min-fresh` and `max-stale` are ignored unless
//! [`Rules::honour_request_freshness`](freshness::Rules::honour_request_freshness)
//! says otherwise.
//!
//! An unsafe request (`POST`, `PUT`, `DELETE`, ...) that succeeds (`2xx`,
//! `3xx`) invalidates its target's stored answer and those of the
//! `Location` and `Content-Location` of its answer that share its origin,
//! resolved against its URI (RFC 9111 §4.4); another origin's, never.
//!
//! `ttl` is how long the stored answer stays fresh, in whole seconds rounded
//! down, as it was stored: spread by the layer's `jitter` (5 % by default;
//! a lifetime the origin stated is only ever shortened), so an answer with
//! `max-age=60` may say `ttl=57`.
//!
//! A miss streams: the leader's head goes to its client as soon as the inner
//! service answers (its `Cache-Status` then says `fwd=miss` alone, since
//! whether it will be stored is not known yet), and its body is buffered
//! for the waiting requests and the store at the inner service's pace,
//! whatever the leader's client does. The waiting requests receive the
//! answer once its body is complete. Whether an answer is shared is decided
//! on its head: one meant for its own client only (`private`, `no-store`,
//! `Set-Cookie`, `no-cache`, an event stream, contradictory framing) sends
//! the waiting requests to make their own calls; a body over
//! `max_body_size` still reaches the leader's client whole, is not stored,
//! and releases the waiting requests too.
//!
//! An expired answer with a validator (`ETag`, `Last-Modified`) is kept,
//! never served unrefreshed, for
//! [`keep_for_revalidation`](HttpPolicy::keep_for_revalidation) (10 minutes
//! by default): its one collapsed refresh (or stale-while-revalidate
//! background refresh) asks `If-None-Match` / `If-Modified-Since`, and a
//! `304` that identifies it freshens its fields and freshness while its
//! body is reused (RFC 9111 §4.3). A `HEAD` refreshes it with a `HEAD`.
//! `no-cache` answers with a validator are stored and revalidated on every
//! use; `must-revalidate`, `proxy-revalidate`, `s-maxage` and `no-cache`
//! answers are never served stale, and the requests waiting for a
//! revalidation whose call failed get a `504`.
//!
//! Cached answers (hit, stale, collapsed) carry `Age`, and so does an answer
//! whose origin sent one. Stored answers keep no hop-by-hop header and carry
//! a `Content-Length` computed from the stored body. Failures become
//! responses and the inner error type is untouched: a panicking inner
//! service gives every waiter a `500` (`detail=panicked`), an inner error
//! goes back, as it is, to the request whose call failed while the others
//! waiting for it get a `502` (`detail=upstream-error`), as do the requests
//! waiting for a body that failed midway or an answer for its own client
//! only that failed (or a stale-if-error answer instead); a `5xx` answer
//! is shared with the requests waiting for it but never stored.

pub mod admission;
pub mod body;
pub mod cache_control;
mod conditional;
mod etag;
mod framing;
pub mod freshness;
mod grpc;
mod hit_head;
mod invalidate;
mod key;
mod l2;
mod location_targets;
mod miss;
mod owned;
mod policy;
mod request_freshness;
mod respond;
mod revalidate;
mod shared;
mod shared_names;
mod status;
mod tee;

pub use body::SharedBody;
pub use grpc::{BufferRequest, BufferRequestLayer, BufferedRequest, grpc_key};
pub use invalidate::HttpCacheExt;
pub use key::{HttpKey, KeyBuilder, MAX_KEY_LEN, default_key};
pub use l2::HttpCodec;
pub use policy::{DEFAULT_KEEP_FOR_REVALIDATION, HttpContext, HttpPolicy};
pub use shared::{HttpFailure, HttpShared};
pub use shared_calls_tower::Outcome;

/// The layer with the HTTP policy: `.layer(SharedCallsLayer::new(key_fn))`.
pub type SharedCallsLayer<F> = shared_calls_tower::CachingLayer<F, HttpPolicy>;

/// The service of [`SharedCallsLayer`].
pub type SharedCalls<S, F> = shared_calls_tower::Caching<S, F, HttpPolicy>;

/// The cache of the HTTP layer: hand one to several layers with
/// `.cache(handle)`, and invalidate through it after writes (by path or
/// request with [`HttpCacheExt`], by exact key with `invalidate`).
pub type HttpCache = shared_calls_tower::PolicyCache<HttpPolicy>;
