//! This crate's response analysis (`freshness::storability`) beside
//! `http-cache-semantics` 3 (`CachePolicy`, as a shared cache) on the same
//! exchanges: what each concludes, and what RFC 9111 asks. Every verdict of
//! both is asserted, so that a change on either side shows here; run with
//! `--nocapture` to print the table the crate's README quotes:
//!
//! ```sh
//! cargo test -p shared-calls-http --test policy_library -- --nocapture
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};
use shared_calls_http::freshness::{Rules, Storability, storability};

/// Tue, 14 Nov 2023 22:13:20 GMT.
const NOW_SECS: u64 = 1_700_000_000;
const NOW_DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
/// `NOW` − 1000 s.
const MINUS_1000S: &str = "Tue, 14 Nov 2023 21:56:40 GMT";
/// `NOW` + 120 s, in the obsolete asctime form RFC 9110 §5.6.7 still accepts.
const PLUS_2M_ASCTIME: &str = "Tue Nov 14 22:15:20 2023";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// What a shared cache does with a response that just arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Stored, fresh for this many seconds.
    Fresh(u64),
    /// Stored, but not to be used without revalidation (or only for a
    /// stale window).
    Stale,
    /// Not stored.
    Pass,
}

use Verdict::{Fresh, Pass, Stale};

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fresh(s) => write!(f, "fresh {s} s"),
            Stale => f.write_str("stored stale"),
            Pass => f.write_str("not stored"),
        }
    }
}

struct Case {
    what: &'static str,
    section: &'static str,
    request: &'static [(&'static str, &'static str)],
    status: u16,
    response: &'static [(&'static str, &'static str)],
    /// What RFC 9111 allows, several verdicts when it allows several. For an
    /// `Age` that is not one number (¹) this is stricter than §5.1's SHOULD
    /// (use a list's first member, ignore an invalid value): such an `Age`
    /// may not make a response fresh in a shared cache.
    rfc: &'static [Verdict],
    ours: Verdict,
    theirs: Verdict,
}

fn ours(case: &Case) -> Verdict {
    let got = storability(
        &Rules::default(),
        &Method::GET,
        &headers(case.request),
        StatusCode::from_u16(case.status).unwrap(),
        &headers(case.response),
        now(),
    );
    match got {
        Storability::Store(f) if f.ttl.is_zero() => Stale,
        Storability::Store(f) => Fresh(f.ttl.as_secs()),
        Storability::DoNotStore(_) => Pass,
    }
}

fn request(pairs: &[(&str, &str)]) -> Request<()> {
    let mut request = Request::builder().uri("http://a.test/x");
    for (name, value) in pairs {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap()
}

fn response(status: u16, pairs: &[(&str, &str)]) -> Response<()> {
    let mut response = Response::builder().status(status);
    for (name, value) in pairs {
        response = response.header(*name, *value);
    }
    response.body(()).unwrap()
}

fn shared() -> CacheOptions {
    CacheOptions {
        shared: true,
        ..CacheOptions::default()
    }
}

fn theirs(case: &Case) -> Verdict {
    let policy = CachePolicy::new_options(
        &request(case.request),
        &response(case.status, case.response),
        now(),
        shared(),
    );
    if !policy.is_storable() {
        return Pass;
    }
    match policy.time_to_live(now()).as_secs() {
        0 => Stale,
        ttl => Fresh(ttl),
    }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let case = |what, section, request, status, response, rfc, ours, theirs| Case {
        what, section, request, status, response, rfc, ours, theirs,
    };
    vec![
        case("max-age", "§5.2.2.1", &[], 200, &[("cache-control", "max-age=60")], &[Fresh(60)], Fresh(60), Fresh(60)),
        case("s-maxage over max-age", "§5.2.2.10", &[], 200, &[("cache-control", "max-age=10, s-maxage=60")], &[Fresh(60)], Fresh(60), Fresh(60)),
        case("Expires − Date", "§5.3", &[], 200, &[("date", NOW_DATE), ("expires", "Tue, 14 Nov 2023 22:15:20 GMT")], &[Fresh(120)], Fresh(120), Fresh(120)),
        case("Expires in asctime form", "§5.3, RFC 9110 §5.6.7", &[], 200, &[("date", NOW_DATE), ("expires", PLUS_2M_ASCTIME)], &[Fresh(120)], Fresh(120), Stale),
        case("invalid Expires", "§5.3", &[], 200, &[("expires", "0")], &[Stale, Pass], Pass, Stale),
        case("invalid max-age", "§4.2.1, §5.2", &[], 200, &[("cache-control", "max-age=abc")], &[Stale, Pass], Pass, Stale),
        case("conflicting max-age", "§4.2.1", &[], 200, &[("cache-control", "max-age=60, max-age=3600")], &[Fresh(60), Stale, Pass], Pass, Fresh(60)),
        // Age (§4.2.3, §5.1).
        case("Age subtracted", "§4.2.3", &[], 200, &[("cache-control", "max-age=60"), ("age", "20")], &[Fresh(40)], Fresh(40), Fresh(40)),
        case("Age = max-age", "§4.2.3", &[], 200, &[("cache-control", "max-age=60"), ("age", "60")], &[Stale, Pass], Pass, Stale),
        case("Age list 0, old", "§5.1, stricter ¹", &[], 200, &[("cache-control", "max-age=60"), ("age", "0, old")], &[Stale, Pass], Pass, Fresh(60)),
        case("two Age lines", "§5.1, stricter ¹", &[], 200, &[("cache-control", "max-age=60"), ("age", "5"), ("age", "50")], &[Stale, Pass], Pass, Fresh(55)),
        case("non-numeric Age", "§5.1, stricter ¹", &[], 200, &[("cache-control", "max-age=60"), ("age", "old")], &[Stale, Pass], Pass, Fresh(60)),
        case("stale on arrival with stale-if-error", "§4.2.3, RFC 5861", &[], 200, &[("cache-control", "max-age=60, stale-if-error=300"), ("age", "90")], &[Stale], Stale, Stale),
        // Heuristic freshness (§4.2.2).
        case("Last-Modified heuristic", "§4.2.2", &[], 200, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], &[Fresh(100)], Fresh(100), Fresh(100)),
        case("Last-Modified on a 302", "§4.2.2", &[], 302, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], &[Pass, Stale], Pass, Pass),
        case("no freshness information", "§4.2.2", &[], 200, &[], &[Stale, Pass, Fresh(60)], Fresh(60), Stale),
        case("immutable alone", "RFC 8246 §2", &[], 200, &[("cache-control", "immutable")], &[Stale, Pass, Fresh(60)], Fresh(60), Fresh(86_400)),
        // The must-revalidate family (§4.2.4): fresh while fresh, never stale.
        case("must-revalidate", "§5.2.2.2", &[], 200, &[("cache-control", "max-age=60, must-revalidate")], &[Fresh(60)], Fresh(60), Fresh(60)),
        case("proxy-revalidate", "§5.2.2.8", &[], 200, &[("cache-control", "max-age=60, proxy-revalidate")], &[Fresh(60)], Fresh(60), Stale),
        // no-cache and the qualified forms (§5.2.2.4, §5.2.2.7).
        // Never storing is always allowed (§3); without a validator a
        // `no-cache` answer would be refetched whole on every use anyway.
        case("no-cache", "§5.2.2.4", &[], 200, &[("cache-control", "max-age=60, no-cache")], &[Stale, Pass], Pass, Stale),
        case("no-cache with an ETag", "§5.2.2.4", &[], 200, &[("cache-control", "max-age=60, no-cache"), ("etag", "\"v1\"")], &[Stale], Stale, Stale),
        case("no-cache=\"x-a\"", "§5.2.2.4", &[], 200, &[("cache-control", "max-age=60, no-cache=\"x-a\""), ("x-a", "1")], &[Fresh(60)], Fresh(60), Stale),
        case("private", "§5.2.2.7", &[], 200, &[("cache-control", "max-age=60, private")], &[Pass], Pass, Pass),
        case("private=\"set-cookie\"", "§5.2.2.7", &[], 200, &[("cache-control", "max-age=60, private=\"set-cookie\""), ("set-cookie", "a=b")], &[Fresh(60)], Fresh(60), Pass),
        case("Pragma: no-cache alone", "§5.4", &[], 200, &[("pragma", "no-cache")], &[Stale, Pass], Pass, Stale),
        // Storing at all (§3, §3.5).
        case("no-store", "§5.2.2.5", &[], 200, &[("cache-control", "max-age=60, no-store")], &[Pass], Pass, Pass),
        case("206", "§3.3", &[], 206, &[("cache-control", "max-age=60"), ("content-range", "bytes 0-3/10")], &[Pass], Pass, Pass),
        case("Authorization", "§3.5", &[("authorization", "Bearer t")], 200, &[("cache-control", "max-age=60")], &[Pass], Pass, Pass),
        case("Authorization, public", "§3.5", &[("authorization", "Bearer t")], 200, &[("cache-control", "public, max-age=60")], &[Fresh(60)], Fresh(60), Fresh(60)),
        case("Set-Cookie, immutable", "§3 (shared cache)", &[], 200, &[("cache-control", "max-age=60, immutable"), ("set-cookie", "id=user-a")], &[Pass, Stale], Pass, Fresh(60)),
        case("Vary: *", "§4.1", &[], 200, &[("cache-control", "max-age=60"), ("vary", "*")], &[Pass, Stale], Pass, Stale),
    ]
}

#[test]
fn verdicts_of_both_policies_on_the_same_exchanges() {
    let (mut ours_right, mut theirs_right) = (0, 0);
    let cases = cases();
    let mut unexpected = Vec::new();
    println!("| case | RFC 9111 | allowed | ours | http-cache-semantics |");
    println!("|---|---|---|---|---|");
    for case in &cases {
        let (got_ours, got_theirs) = (ours(case), theirs(case));
        if (got_ours, got_theirs) != (case.ours, case.theirs) {
            unexpected.push(format!("{}: {got_ours:?}, {got_theirs:?}", case.what));
        }
        let right = |v: Verdict| case.rfc.contains(&v);
        ours_right += usize::from(right(got_ours));
        theirs_right += usize::from(right(got_theirs));
        let mark = |v: Verdict| format!("{v}{}", if right(v) { "" } else { " ✗" });
        let asks: Vec<String> = case.rfc.iter().map(Verdict::to_string).collect();
        println!(
            "| {} | {} | {} | {} | {} |",
            case.what,
            case.section,
            asks.join(" or "),
            mark(got_ours),
            mark(got_theirs)
        );
    }
    println!(
        "\nallowed verdicts: ours {ours_right}/{n}, http-cache-semantics {theirs_right}/{n}",
        n = cases.len()
    );
    assert!(unexpected.is_empty(), "verdicts changed: {unexpected:#?}");
}

/// What `http-cache-semantics` sends to revalidate, and how it merges a
/// `304` (§4.3.1, §4.3.4): the parts this crate's revalidation must match.
#[test]
fn revalidation_by_http_cache_semantics() {
    let stored = response(
        200,
        &[
            ("cache-control", "max-age=1"),
            ("date", NOW_DATE),
            ("etag", "W/\"v1\""),
            ("last-modified", MINUS_1000S),
            ("x-old", "kept"),
            ("content-length", "4"),
        ],
    );
    let policy = CachePolicy::new_options(&request(&[]), &stored, now(), shared());
    let later = now() + Duration::from_secs(5);
    let BeforeRequest::Stale {
        request: conditional,
        matches,
    } = policy.before_request(&request(&[]), later)
    else {
        panic!("stale after 5 s");
    };
    assert!(matches);
    // §4.3.1: the stored validators, a weak ETag allowed on a GET.
    assert_eq!(conditional.headers["if-none-match"], "W/\"v1\"");
    assert_eq!(conditional.headers["if-modified-since"], MINUS_1000S);

    let not_modified = response(
        304,
        &[
            ("cache-control", "max-age=100"),
            ("etag", "W/\"v1\""),
            ("x-new", "added"),
            ("content-length", "0"),
        ],
    );
    let AfterResponse::NotModified(updated, parts) =
        policy.after_response(&request(&[]), &not_modified, later)
    else {
        panic!("a matching 304 freshens the stored response");
    };
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["cache-control"], "max-age=100");
    assert_eq!(parts.headers["x-old"], "kept");
    assert_eq!(parts.headers["content-length"], "4", "§3.2: not updated");
    // §3.2: a field the 304 adds must be added; the library drops it.
    assert_eq!(parts.headers.get("x-new"), None);
    assert_eq!(updated.time_to_live(later), Duration::from_secs(100));
}
