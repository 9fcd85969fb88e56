//! Parsing of the `Cache-Control` and `Vary` header fields.
//!
//! Everything here is pure: no I/O, no clock, no allocation beyond the parsed
//! result. The rules that decide what a *shared* cache may store live in
//! [`crate::freshness`]; this module only turns header bytes into facts.
//!
//! # `Cache-Control` (RFC 9111 §5.2)
//!
//! [`CacheControl::from_headers`] reads every `Cache-Control` field line of a
//! message as one comma-separated list (RFC 9110 §5.3: several lines are
//! equivalent to one line joined with commas) and follows the grammar of
//! RFC 9111 §5.2:
//!
//! ```text
//! Cache-Control   = #cache-directive
//! cache-directive = token [ "=" ( token / quoted-string ) ]
//! ```
//!
//! - Directive names are case-insensitive (§5.2).
//! - Arguments may be tokens or quoted strings. Senders should not quote
//!   delta-seconds, but recipients should accept them quoted (§5.2), so
//!   `max-age="60"` is the same as `max-age=60`.
//! - Whitespace (SP, HTAB) is tolerated around commas and, although the
//!   grammar has none there, around `=`: `max-age = 60` can only mean one
//!   thing.
//! - Empty list elements (`a,,b`) are ignored (RFC 9110 §5.6.1).
//! - delta-seconds larger than 2^31 saturate to 2^31 (RFC 9111 §1.2.2).
//! - Unknown directives are ignored (RFC 9111 §5.2.3), but they must still be
//!   syntactically valid.
//! - `no-cache="field, ..."` and `private="field, ..."` are *qualified*
//!   (§5.2.2.4, §5.2.2.7): they do not forbid storing or reusing the
//!   response, only the named fields, which [`qualified_fields`] lists so
//!   that the stored copy can go without them. A qualifier that is not a
//!   list of field names makes the directive count as unqualified (the
//!   stricter reading).
//!
//! Anything else makes the whole field invalid: a non-numeric or negative
//! delta-seconds, a missing required argument, an argument on a directive that
//! takes none, an unterminated quoted string, bytes that are not visible ASCII
//! (obs-text included), or the same directive twice with different values
//! (§4.2.1: "either the first occurrence should be used or the response
//! should be considered stale" — a shared cache that must never guess takes
//! the second branch). The caller treats an invalid response field as "do not
//! store".
//!
//! Requests are read with [`CacheControl::from_headers_lenient`], which keeps
//! every well-formed directive and drops only the malformed ones, so that a
//! client's `no-store` still counts when another directive next to it is
//! garbage (see [`crate::freshness::classify_request`]).
//!
//! # `Vary` (RFC 9111 §4.1, RFC 9110 §12.5.5)
//!
//! [`vary`] merges all `Vary` lines, lowercases and deduplicates the names.
//! A member `*` means the response can never be matched by a cache
//! ([`VaryError::Any`], §4.1). More than [`MAX_VARY_NAMES`] distinct names
//! ([`VaryError::TooMany`]) or an element that is not a token
//! ([`VaryError::Malformed`]) make the response unstorable too.
//!
//! [`Vary::capture`] records the request's values for each name, and
//! [`VaryKey::matches`] compares a later request against them. Values are
//! compared exactly, after combining all field lines with commas and trimming
//! whitespace around the commas (§4.1 allows "normalization" but does not
//! require it; header-specific normalisation such as reordering
//! `Accept-Encoding` tokens is deliberately not done). A header absent from
//! one request only matches a request where it is absent too (§4.1).

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CACHE_CONTROL, HeaderMap, HeaderName, VARY};

/// The largest delta-seconds value kept: larger values saturate to this
/// (2^31 seconds, RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// The most distinct header names a `Vary` field may list before the response
/// is refused as hostile ([`VaryError::TooMany`]).
pub const MAX_VARY_NAMES: usize = 32;

/// The directives of a message's `Cache-Control` header field.
///
/// One type serves requests and responses: response directives
/// (RFC 9111 §5.2.2) and request directives (§5.2.1) share names
/// (`max-age`, `no-cache`, `no-store`), and the accessors document which side
/// each one belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CacheControl {
    no_store: bool,
    no_cache: bool,
    no_cache_qualified: bool,
    private: bool,
    private_qualified: bool,
    public: bool,
    must_revalidate: bool,
    proxy_revalidate: bool,
    immutable: bool,
    only_if_cached: bool,
    max_age: Option<Duration>,
    s_maxage: Option<Duration>,
    stale_while_revalidate: Option<Duration>,
    stale_if_error: Option<Duration>,
    max_stale: Option<Duration>,
    min_fresh: Option<Duration>,
}

impl CacheControl {
    /// Parses all `Cache-Control` lines of `headers` strictly.
    ///
    /// No `Cache-Control` field at all gives the empty set of directives.
    ///
    /// # Errors
    ///
    /// [`InvalidCacheControl`] when any element is malformed or a directive
    /// appears twice with different values (see the [module docs](self)).
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, InvalidCacheControl> {
        let mut parser = Parser::new(false);
        for value in headers.get_all(CACHE_CONTROL) {
            parser.parse(value.as_bytes())?;
        }
        Ok(parser.finish())
    }

    /// Parses all `Cache-Control` lines of `headers`, dropping malformed
    /// directives instead of failing.
    ///
    /// A well-formed directive survives a malformed neighbour; a delta-seconds
    /// directive with an invalid or conflicting value is dropped (treated as
    /// absent); a directive that takes no argument but was given one still
    /// counts (`no-store=1` is still `no-store`). Meant for requests, where
    /// ignoring the client's garbage is harmless but ignoring its `no-store`
    /// would not be.
    pub fn from_headers_lenient(headers: &HeaderMap) -> Self {
        let mut parser = Parser::new(true);
        for value in headers.get_all(CACHE_CONTROL) {
            // Lenient parsing never fails.
            let _ = parser.parse(value.as_bytes());
        }
        parser.finish()
    }

    /// `no-store` (request §5.2.1.5, response §5.2.2.5): nothing of this
    /// exchange may be stored.
    pub fn no_store(&self) -> bool {
        self.no_store
    }

    /// Unqualified `no-cache` (request §5.2.1.4, response §5.2.2.4): a
    /// stored response must not be used without revalidation.
    pub fn no_cache(&self) -> bool {
        self.no_cache
    }

    /// `no-cache="field, ..."` (response, §5.2.2.4): the named fields must
    /// not be sent in a response reused without revalidation
    /// ([`qualified_fields`]).
    pub fn no_cache_qualified(&self) -> bool {
        self.no_cache_qualified
    }

    /// Unqualified `private` (response, §5.2.2.7): a shared cache must not
    /// store the response.
    pub fn private(&self) -> bool {
        self.private
    }

    /// `private="field, ..."` (response, §5.2.2.7): a shared cache must not
    /// store the named fields ([`qualified_fields`]).
    pub fn private_qualified(&self) -> bool {
        self.private_qualified
    }

    /// `public` (response, §5.2.2.9).
    pub fn public(&self) -> bool {
        self.public
    }

    /// `must-revalidate` (response, §5.2.2.2): never serve it stale.
    pub fn must_revalidate(&self) -> bool {
        self.must_revalidate
    }

    /// `proxy-revalidate` (response, §5.2.2.8): a shared cache must never serve
    /// it stale.
    pub fn proxy_revalidate(&self) -> bool {
        self.proxy_revalidate
    }

    /// `immutable` (response, RFC 8246).
    pub fn immutable(&self) -> bool {
        self.immutable
    }

    /// `only-if-cached` (request, §5.2.1.7).
    pub fn only_if_cached(&self) -> bool {
        self.only_if_cached
    }

    /// `max-age` (request §5.2.1.1, response §5.2.2.1), saturated to 2^31 s.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// `s-maxage` (response, §5.2.2.10), saturated to 2^31 s.
    pub fn s_maxage(&self) -> Option<Duration> {
        self.s_maxage
    }

    /// `stale-while-revalidate` (response, RFC 5861 §3).
    pub fn stale_while_revalidate(&self) -> Option<Duration> {
        self.stale_while_revalidate
    }

    /// `stale-if-error` (response, RFC 5861 §4).
    pub fn stale_if_error(&self) -> Option<Duration> {
        self.stale_if_error
    }

    /// `max-stale` (request, §5.2.1.2). A bare `max-stale` (any staleness is
    /// acceptable) is [`Duration::MAX`].
    pub fn max_stale(&self) -> Option<Duration> {
        self.max_stale
    }

    /// `min-fresh` (request, §5.2.1.3).
    pub fn min_fresh(&self) -> Option<Duration> {
        self.min_fresh
    }
}

/// A `Cache-Control` field that could not be parsed: malformed syntax, an
/// invalid argument, or conflicting duplicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidCacheControl {
    kind: InvalidKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvalidKind {
    Syntax,
    Bytes,
    UnterminatedQuote,
    MissingArgument,
    UnexpectedArgument,
    DeltaSeconds,
    Conflict,
}

impl InvalidCacheControl {
    const fn new(kind: InvalidKind) -> Self {
        Self { kind }
    }
}

impl fmt::Display for InvalidCacheControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            InvalidKind::Syntax => "malformed directive list",
            InvalidKind::Bytes => "bytes outside visible ASCII",
            InvalidKind::UnterminatedQuote => "unterminated quoted string",
            InvalidKind::MissingArgument => "directive is missing its argument",
            InvalidKind::UnexpectedArgument => "directive takes no argument",
            InvalidKind::DeltaSeconds => "argument is not delta-seconds",
            InvalidKind::Conflict => "directive repeated with a different value",
        };
        write!(f, "invalid Cache-Control: {what}")
    }
}

impl Error for InvalidCacheControl {}

/// `tchar` of RFC 9110 §5.6.2.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_ows(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_ows(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Parses `1*DIGIT` into seconds, saturating at [`DELTA_SECONDS_MAX`].
pub(crate) fn parse_delta_seconds(digits: impl IntoIterator<Item = u8>) -> Option<Duration> {
    let mut seen = false;
    let mut secs: u64 = 0;
    for b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        seen = true;
        secs = secs
            .saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(DELTA_SECONDS_MAX);
    }
    seen.then(|| Duration::from_secs(secs))
}

/// A directive argument, borrowed from the header bytes.
#[derive(Clone, Copy)]
enum Arg<'a> {
    Token(&'a [u8]),
    /// The content between the quotes, escapes still in place.
    Quoted(&'a [u8]),
}

impl Arg<'_> {
    fn delta_seconds(self) -> Option<Duration> {
        match self {
            Arg::Token(t) => parse_delta_seconds(t.iter().copied()),
            Arg::Quoted(q) => parse_delta_seconds(Unescape { rest: q }),
        }
    }
}

/// Iterates over the characters of a quoted string's content, resolving
/// quoted-pairs (`\x` → `x`).
struct Unescape<'a> {
    rest: &'a [u8],
}

impl Iterator for Unescape<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        match self.rest {
            [b'\\', c, rest @ ..] => {
                self.rest = rest;
                Some(*c)
            }
            [c, rest @ ..] => {
                self.rest = rest;
                Some(*c)
            }
            [] => None,
        }
    }
}

#[derive(Clone, Copy)]
enum Slot {
    MaxAge,
    SMaxage,
    StaleWhileRevalidate,
    StaleIfError,
    MaxStale,
    MinFresh,
}

/// Sets a boolean directive.
type Setter = fn(&mut CacheControl);

/// A parsed element: the directive name and its argument.
type Directive<'a> = (&'a [u8], Option<Arg<'a>>);

enum Kind {
    /// Takes no argument.
    Flag(Setter),
    /// Takes an optional list of field names: the first setter without
    /// one (or with one that is not such a list), the second with one.
    Qualified(Setter, Setter),
    /// Requires delta-seconds.
    Delta(Slot),
    /// `max-stale`: optional delta-seconds.
    OptionalDelta(Slot),
    Unknown,
}

fn kind_of(name: &[u8]) -> Kind {
    const FLAGS: &[(&str, Setter)] = &[
        ("no-store", |c| c.no_store = true),
        ("public", |c| c.public = true),
        ("must-revalidate", |c| c.must_revalidate = true),
        ("proxy-revalidate", |c| c.proxy_revalidate = true),
        ("immutable", |c| c.immutable = true),
        ("only-if-cached", |c| c.only_if_cached = true),
    ];
    const QUALIFIED: &[(&str, Setter, Setter)] = &[
        (
            "no-cache",
            |c| c.no_cache = true,
            |c| c.no_cache_qualified = true,
        ),
        (
            "private",
            |c| c.private = true,
            |c| c.private_qualified = true,
        ),
    ];
    const DELTAS: &[(&str, Slot)] = &[
        ("max-age", Slot::MaxAge),
        ("s-maxage", Slot::SMaxage),
        ("stale-while-revalidate", Slot::StaleWhileRevalidate),
        ("stale-if-error", Slot::StaleIfError),
        ("min-fresh", Slot::MinFresh),
    ];
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    if let Some((_, set)) = FLAGS.iter().find(|(n, _)| is(n)) {
        Kind::Flag(*set)
    } else if let Some((_, plain, qualified)) = QUALIFIED.iter().find(|(n, _, _)| is(n)) {
        Kind::Qualified(*plain, *qualified)
    } else if let Some((_, slot)) = DELTAS.iter().find(|(n, _)| is(n)) {
        Kind::Delta(*slot)
    } else if is("max-stale") {
        Kind::OptionalDelta(Slot::MaxStale)
    } else {
        Kind::Unknown
    }
}

struct Parser {
    lenient: bool,
    out: CacheControl,
    /// Slots whose value conflicted (lenient mode): they stay absent.
    poisoned: u8,
}

impl Parser {
    fn new(lenient: bool) -> Self {
        Self {
            lenient,
            out: CacheControl::default(),
            poisoned: 0,
        }
    }

    fn finish(self) -> CacheControl {
        self.out
    }

    fn slot(&mut self, slot: Slot) -> &mut Option<Duration> {
        match slot {
            Slot::MaxAge => &mut self.out.max_age,
            Slot::SMaxage => &mut self.out.s_maxage,
            Slot::StaleWhileRevalidate => &mut self.out.stale_while_revalidate,
            Slot::StaleIfError => &mut self.out.stale_if_error,
            Slot::MaxStale => &mut self.out.max_stale,
            Slot::MinFresh => &mut self.out.min_fresh,
        }
    }

    fn set_slot(&mut self, slot: Slot, value: Duration) -> Result<(), InvalidKind> {
        let bit = 1u8 << (slot as u8);
        if self.poisoned & bit != 0 {
            return Ok(());
        }
        let lenient = self.lenient;
        let place = self.slot(slot);
        match *place {
            Some(old) if old != value => {
                if lenient {
                    *place = None;
                    self.poisoned |= bit;
                    Ok(())
                } else {
                    Err(InvalidKind::Conflict)
                }
            }
            _ => {
                *place = Some(value);
                Ok(())
            }
        }
    }

    fn apply(&mut self, name: &[u8], arg: Option<Arg<'_>>) -> Result<(), InvalidKind> {
        match kind_of(name) {
            Kind::Flag(set) => {
                if arg.is_some() && !self.lenient {
                    return Err(InvalidKind::UnexpectedArgument);
                }
                set(&mut self.out);
                Ok(())
            }
            Kind::Qualified(plain, qualified) => {
                match arg.map(field_names) {
                    Some(Some(_)) => qualified(&mut self.out),
                    _ => plain(&mut self.out),
                }
                Ok(())
            }
            Kind::Delta(slot) => {
                let arg = arg.ok_or(InvalidKind::MissingArgument)?;
                let value = arg.delta_seconds().ok_or(InvalidKind::DeltaSeconds)?;
                self.set_slot(slot, value)
            }
            Kind::OptionalDelta(slot) => {
                let value = match arg {
                    None => Duration::MAX,
                    Some(arg) => arg.delta_seconds().ok_or(InvalidKind::DeltaSeconds)?,
                };
                self.set_slot(slot, value)
            }
            Kind::Unknown => Ok(()),
        }
    }

    /// Parses one field line. In lenient mode, malformed elements are
    /// skipped and the function returns `Ok`.
    fn parse(&mut self, b: &[u8]) -> Result<(), InvalidCacheControl> {
        let mut i = 0;
        while i < b.len() {
            let applied = match element(b, &mut i) {
                Ok(Some((name, arg))) => self.apply(name, arg),
                Ok(None) => Ok(()),
                Err(kind) if self.lenient => {
                    debug_assert!(kind != InvalidKind::Conflict);
                    skip_element(b, &mut i);
                    Ok(())
                }
                Err(kind) => Err(kind),
            };
            match applied {
                // A lenient parse drops a directive whose argument is bad.
                Err(_) if self.lenient => {}
                Err(kind) => return Err(InvalidCacheControl::new(kind)),
                Ok(()) => {}
            }
        }
        Ok(())
    }
}

/// Parses one list element starting at `*i`. On success `*i` is just past
/// the element's terminating comma (or at the end) and the directive, if the
/// element was not empty, is returned. On error `*i` is inside the element.
fn element<'a>(b: &'a [u8], i: &mut usize) -> Result<Option<Directive<'a>>, InvalidKind> {
    skip_ows(b, i);
    let Some(&first) = b.get(*i) else {
        return Ok(None);
    };
    if first == b',' {
        *i += 1;
        return Ok(None);
    }
    let name = take_token(b, i).ok_or_else(|| classify_bad_byte(first))?;
    skip_ows(b, i);
    let mut arg = None;
    if b.get(*i) == Some(&b'=') {
        *i += 1;
        skip_ows(b, i);
        match b.get(*i) {
            Some(b'"') => arg = Some(Arg::Quoted(take_quoted(b, i)?)),
            Some(&c) => {
                let token = take_token(b, i).ok_or_else(|| classify_bad_byte(c))?;
                arg = Some(Arg::Token(token));
            }
            None => return Err(InvalidKind::MissingArgument),
        }
        skip_ows(b, i);
    }
    match b.get(*i) {
        None => {}
        Some(b',') => *i += 1,
        Some(&c) => return Err(classify_bad_byte(c)),
    }
    Ok(Some((name, arg)))
}

fn classify_bad_byte(c: u8) -> InvalidKind {
    if c.is_ascii_graphic() || is_ows(c) {
        InvalidKind::Syntax
    } else {
        InvalidKind::Bytes
    }
}

fn skip_ows(b: &[u8], i: &mut usize) {
    while *i < b.len() && is_ows(b[*i]) {
        *i += 1;
    }
}

fn take_token<'a>(b: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    let start = *i;
    while *i < b.len() && is_tchar(b[*i]) {
        *i += 1;
    }
    (*i > start).then(|| &b[start..*i])
}

/// `*i` is on the opening quote; returns the content and leaves `*i` past the
/// closing quote.
fn take_quoted<'a>(b: &'a [u8], i: &mut usize) -> Result<&'a [u8], InvalidKind> {
    let start = *i + 1;
    let mut j = start;
    while j < b.len() {
        match b[j] {
            b'"' => {
                *i = j + 1;
                return Ok(&b[start..j]);
            }
            b'\\' => {
                // quoted-pair = "\" ( HTAB / SP / VCHAR ); obs-text refused.
                match b.get(j + 1) {
                    Some(&c) if c == b'\t' || c == b' ' || c.is_ascii_graphic() => j += 2,
                    Some(_) => return Err(InvalidKind::Bytes),
                    None => return Err(InvalidKind::UnterminatedQuote),
                }
            }
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E; obs-text refused.
            c if c == b'\t' || c == b' ' || c.is_ascii_graphic() => j += 1,
            _ => return Err(InvalidKind::Bytes),
        }
    }
    Err(InvalidKind::UnterminatedQuote)
}

/// Lenient recovery: skips to just past the next comma that is not inside a
/// quoted string (or to the end).
fn skip_element(b: &[u8], i: &mut usize) {
    let mut in_quotes = false;
    while *i < b.len() {
        let c = b[*i];
        *i += 1;
        match c {
            b'\\' if in_quotes => *i += 1,
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => return,
            _ => {}
        }
    }
    *i = (*i).min(b.len());
}

/// The field names of a qualified `no-cache` or `private` argument, `None`
/// when it is not a non-empty list of field names.
fn field_names(arg: Arg<'_>) -> Option<Vec<HeaderName>> {
    let text: Vec<u8> = match arg {
        Arg::Token(t) => t.to_vec(),
        Arg::Quoted(q) => Unescape { rest: q }.collect(),
    };
    let mut names = Vec::new();
    for element in text.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue;
        }
        if !element.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        let name = HeaderName::from_bytes(element).ok()?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    (!names.is_empty()).then_some(names)
}

/// The fields named by a response's qualified `no-cache="..."` and
/// `private="..."` directives (RFC 9111 §5.2.2.4, §5.2.2.7), lowercase and
/// deduplicated: a shared cache stores the response without them.
///
/// Empty when there is no qualified directive or `Cache-Control` does not
/// parse (an invalid field is not stored at all).
///
/// ```
/// use http::HeaderMap;
/// use shared_calls_http::cache_control::qualified_fields;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cache-control", r#"max-age=60, private="Set-Cookie, x-user""#.parse().unwrap());
/// let names: Vec<_> = qualified_fields(&headers).iter().map(|n| n.to_string()).collect();
/// assert_eq!(names, ["set-cookie", "x-user"]);
/// ```
pub fn qualified_fields(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = Vec::new();
    if CacheControl::from_headers(headers).is_err() {
        return names;
    }
    for value in headers.get_all(CACHE_CONTROL) {
        let bytes = value.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let Ok(directive) = element(bytes, &mut i) else {
                break;
            };
            let Some((name, Some(arg))) = directive else {
                continue;
            };
            let qualifies =
                name.eq_ignore_ascii_case(b"no-cache") || name.eq_ignore_ascii_case(b"private");
            for field in field_names(arg).filter(|_| qualifies).unwrap_or_default() {
                if !names.contains(&field) {
                    names.push(field);
                }
            }
        }
    }
    names
}

/// Why a response's `Vary` field makes it unstorable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaryError {
    /// `Vary: *`: the response varies on something outside the request, so a
    /// cache can never match it (RFC 9111 §4.1).
    Any,
    /// More than [`MAX_VARY_NAMES`] distinct header names.
    TooMany,
    /// An element that is not a header name (not a token, or not ASCII).
    Malformed,
}

impl fmt::Display for VaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VaryError::Any => "Vary: * can never be matched",
            VaryError::TooMany => "Vary lists too many header names",
            VaryError::Malformed => "malformed Vary header",
        })
    }
}

impl Error for VaryError {}

/// The request header names a response varies on (lowercase, deduplicated,
/// in order of first appearance). Cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Vary {
    names: Arc<[HeaderName]>,
}

/// Parses every `Vary` line of a response.
///
/// No `Vary` field (or one with only empty elements) gives an empty [`Vary`].
///
/// # Errors
///
/// [`VaryError::Any`] for a `*` member, [`VaryError::TooMany`] beyond
/// [`MAX_VARY_NAMES`] distinct names, [`VaryError::Malformed`] for an element
/// that is not a token.
pub fn vary(headers: &HeaderMap) -> Result<Vary, VaryError> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(VARY) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let element = trim_ows(element);
            if element.is_empty() {
                continue;
            }
            if element == b"*" {
                return Err(VaryError::Any);
            }
            if !element.iter().all(|&b| is_tchar(b)) {
                return Err(VaryError::Malformed);
            }
            let name = HeaderName::from_bytes(element).map_err(|_| VaryError::Malformed)?;
            if !names.contains(&name) {
                if names.len() == MAX_VARY_NAMES {
                    return Err(VaryError::TooMany);
                }
                names.push(name);
            }
        }
    }
    Ok(Vary {
        names: names.into(),
    })
}

impl Vary {
    /// The header names, lowercase, in order of first appearance.
    pub fn names(&self) -> &[HeaderName] {
        &self.names
    }

    /// Whether the response varies on nothing.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Records, for each name, the request's values: all field lines combined
    /// with commas, whitespace around the commas trimmed; `None` where the
    /// request lacks the header.
    pub fn capture(&self, request_headers: &HeaderMap) -> VaryKey {
        let entries: Vec<VaryEntry> = self
            .names
            .iter()
            .map(|name| VaryEntry {
                name: name.clone(),
                value: normalized(request_headers, name),
            })
            .collect();
        VaryKey {
            entries: entries.into(),
        }
    }
}

/// The request values a stored response was selected with (see
/// [`Vary::capture`]). Cheap to clone and compare.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VaryKey {
    entries: Arc<[VaryEntry]>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct VaryEntry {
    name: HeaderName,
    value: Option<Box<[u8]>>,
}

impl VaryKey {
    /// Whether `request_headers` carry the same values as the captured
    /// request for every varying header (RFC 9111 §4.1). Allocates nothing.
    pub fn matches(&self, request_headers: &HeaderMap) -> bool {
        self.entries
            .iter()
            .all(|entry| normalized_eq(entry.value.as_deref(), request_headers, &entry.name))
    }

    /// The values of another request for the same header names.
    pub(crate) fn recapture(&self, request_headers: &HeaderMap) -> VaryKey {
        let entries: Vec<VaryEntry> = self
            .entries
            .iter()
            .map(|entry| VaryEntry {
                name: entry.name.clone(),
                value: normalized(request_headers, &entry.name),
            })
            .collect();
        VaryKey {
            entries: entries.into(),
        }
    }

    /// Whether the key varies on nothing (and so matches every request).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Roughly how many bytes it holds, for a cache bounded by weight: the
    /// captured values come from requests, and may be long.
    pub(crate) fn weight(&self) -> usize {
        self.entries
            .iter()
            .map(|entry| {
                entry.name.as_str().len() + entry.value.as_ref().map_or(0, |v| v.len()) + 32
            })
            .sum()
    }

    /// The captured names and normalised values, for a second tier to
    /// write them down.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&HeaderName, Option<&[u8]>)> {
        self.entries
            .iter()
            .map(|entry| (&entry.name, entry.value.as_deref()))
    }

    /// A key from [`entries`](Self::entries) read back.
    pub(crate) fn from_entries(entries: Vec<(HeaderName, Option<Box<[u8]>>)>) -> Self {
        let entries: Vec<VaryEntry> = entries
            .into_iter()
            .map(|(name, value)| VaryEntry { name, value })
            .collect();
        Self {
            entries: entries.into(),
        }
    }
}

/// Pieces of all lines of `name`, split at commas, each trimmed of OWS.
fn pieces<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(trim_ows)
}

fn normalized(headers: &HeaderMap, name: &HeaderName) -> Option<Box<[u8]>> {
    if !headers.contains_key(name) {
        return None;
    }
    let mut out = Vec::new();
    for (n, piece) in pieces(headers, name).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(piece);
    }
    Some(out.into_boxed_slice())
}

fn normalized_eq(stored: Option<&[u8]>, headers: &HeaderMap, name: &HeaderName) -> bool {
    let Some(mut rest) = stored else {
        return !headers.contains_key(name);
    };
    if !headers.contains_key(name) {
        return false;
    }
    for (n, piece) in pieces(headers, name).enumerate() {
        if n > 0 {
            match rest.split_first() {
                Some((b',', tail)) => rest = tail,
                _ => return false,
            }
        }
        match rest.strip_prefix(piece) {
            Some(tail) => rest = tail,
            None => return false,
        }
    }
    rest.is_empty()
}
