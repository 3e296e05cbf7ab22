//! Per-function CORS, answered by the host itself.
//!
//! A manifest's `cors` object ([`CorsSettings`]) is compiled at load into a [`CorsPolicy`]. The host answers
//! preflights itself ([`CorsPolicy::preflight`]; the guest is not called) and adds CORS headers to every other
//! response ([`CorsPolicy::apply`]), following the Fetch standard and tower-http's `CorsLayer`, with these choices:
//!
//! - **Origins are compared byte for byte**, as browsers send them: lower case, punycode, no default port, no
//!   path. [`CorsSettings::check`] refuses listed origins that could never match (upper case, a path or trailing
//!   slash, a default port, non-ASCII, `null`) and names the form to write, rather than normalising silently.
//! - **`["*"]` answers `*`**, never the request's origin; an allowed origin from a list is echoed. A request with
//!   several `Origin` headers counts as not allowed. `Origin: null` gets `*` from `["*"]`, nothing from a list.
//! - **Refused preflights are still `204`.** If the origin is not allowed, the answer has no `Access-Control-*`
//!   header (as tower-http), so the browser refuses. If the origin is allowed but the method or a header is not,
//!   the answer keeps `Access-Control-Allow-Origin` and the allowed lists: the browser refuses just as surely,
//!   but its console names the method or header at fault instead of a misleading "no Access-Control-Allow-Origin"
//!   (nothing secret is in the lists). [`Preflight::refusal`] says which check failed, for the host's logs.
//! - **`*` in `allow_headers` / `allow_methods` mirrors** `Access-Control-Request-Headers` / `-Method` rather
//!   than sending a literal `*`, which does not cover `Authorization`. `*` in `expose_headers` is sent as is.
//!   Any `*` together with `allow_credentials: true` is refused, as in tower-http.
//! - **`Vary: origin` on every response**, also without `Origin` or with a refused one: the response differs by
//!   `Origin`, and a shared cache must not hand one lacking `Access-Control-Allow-Origin` to a CORS request (Fetch,
//!   "CORS protocol and HTTP caches"). It is appended to the response's `Vary`, unless that already covers it.
//!   Preflights vary on `origin, access-control-request-method, access-control-request-headers`.
//! - **The host's policy wins:** [`CorsPolicy::apply`] first removes every `access-control-*` header the guest set.
//! - **Methods are upper-cased** (as `invoke.methods`), header names lower-cased, duplicates dropped.
//! - **`max_age_s` is at most 86400** (Firefox's cap; Chromium's is 7200): more is likely milliseconds.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

/// The largest `max_age_s` accepted, in seconds: a day, the most any browser honours.
pub const MAX_AGE_LIMIT_S: u64 = 86_400;

const WILDCARD: &str = "*";
const VARY_ACTUAL: &str = "origin";
const VARY_PREFLIGHT: &str = "origin, access-control-request-method, access-control-request-headers";

/// The `cors` object of a function's manifest, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed to read responses: exact origins (`scheme://host[:port]`, lower case, no path, no
    /// trailing slash) or `["*"]` for any origin. Required and non-empty.
    pub allow_origins: Vec<String>,
    /// Methods allowed cross-origin; empty means the methods the route serves; `["*"]` mirrors the request's.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Request headers allowed cross-origin; `["*"]` mirrors the preflight's `Access-Control-Request-Headers`.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read beyond the safelisted ones; `["*"]` exposes all.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Whether credentialed requests (cookies, HTTP auth) may read responses; needs a list of origins.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long, in seconds, a browser may cache a preflight's answer; at most [`MAX_AGE_LIMIT_S`].
    #[serde(default)]
    pub max_age_s: Option<u64>,
}

impl CorsSettings {
    /// Checks the settings. Each error names the field (`cors.…`, with the index of a bad list entry) and the
    /// fix, e.g. "field `cors.allow_credentials`: a wildcard origin cannot be combined with credentials; list
    /// the origins instead". Refused: an empty `allow_origins`, `*` mixed with other entries in any list, any
    /// `*` together with `allow_credentials: true`, malformed origins, invalid header names or methods, and a
    /// `max_age_s` above [`MAX_AGE_LIMIT_S`].
    pub fn check(&self) -> Result<(), String> {
        CorsPolicy::new(self).map(drop)
    }
}

/// Why a preflight was refused, as the browser will judge it from [`CorsPolicy::preflight`]'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No single `Origin`, or one the policy does not allow; the answer has no `Access-Control-*` headers.
    Origin,
    /// `Access-Control-Request-Method` is missing, or names a method that is neither allowed nor safelisted.
    Method,
    /// `Access-Control-Request-Headers` names a header that is not allowed.
    Headers,
}

impl Refusal {
    /// A short description for logs, e.g. "origin not allowed".
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Origin => "origin not allowed",
            Self::Method => "method not allowed",
            Self::Headers => "request headers not allowed",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host's full answer to a preflight: always `204 No Content` with an empty body.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// Always [`StatusCode::NO_CONTENT`]; refusal is expressed by the headers, as the Fetch standard expects.
    pub status: StatusCode,
    /// `Vary` and, when the origin is allowed, the `Access-Control-*` headers.
    pub headers: HeaderMap,
    /// `None` when the browser will let the request through; otherwise the first check that fails.
    pub refusal: Option<Refusal>,
}

impl Preflight {
    /// Builds the HTTP response, with `body` (normally empty).
    pub fn into_response<B>(self, body: B) -> http::Response<B> {
        let mut response = http::Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// Which origins are allowed, compiled.
#[derive(Debug, Clone)]
enum Origins {
    Any,
    /// Each allowed origin, ready to be echoed.
    List(Vec<HeaderValue>),
}

/// `allow_methods`, compiled.
#[derive(Debug, Clone)]
enum Methods {
    /// Empty in the manifest: the route's methods.
    Route,
    /// `["*"]`: echo the requested method.
    Mirror,
    /// The allowed methods, and their header value.
    List(Vec<Method>, HeaderValue),
}

/// `allow_headers`, compiled.
#[derive(Debug, Clone)]
enum AllowHeaders {
    /// `["*"]`: echo the requested headers.
    Mirror,
    /// The allowed names (lower case) and their header value, `None` when the list is empty.
    List(Vec<HeaderName>, Option<HeaderValue>),
}

/// A function's CORS policy, compiled once at load: header values are prepared, so the request path only
/// clones them (answering a preflight for a route without `allow_methods` builds one value from its methods).
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Origins,
    methods: Methods,
    allow_headers: AllowHeaders,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

impl CorsPolicy {
    /// Checks and compiles `settings`; errors are those of [`CorsSettings::check`].
    pub fn new(settings: &CorsSettings) -> Result<Self, String> {
        let credentials = settings.allow_credentials;
        if settings.allow_origins.is_empty() {
            return Err("field `cors.allow_origins`: must list at least one origin, e.g. \
                        [\"https://app.example.com\"], or be [\"*\"] for any origin"
                .to_owned());
        }
        let origins = if wildcard("allow_origins", &settings.allow_origins, credentials)? {
            Origins::Any
        } else {
            let parse = |origin: &str| {
                check_origin(origin)?;
                HeaderValue::from_str(origin).map_err(|_| format!("`{origin}` is not a valid header value"))
            };
            Origins::List(parse_list("allow_origins", &settings.allow_origins, parse)?)
        };

        let methods = if settings.allow_methods.is_empty() {
            Methods::Route
        } else if wildcard("allow_methods", &settings.allow_methods, credentials)? {
            Methods::Mirror
        } else {
            let list = parse_list("allow_methods", &settings.allow_methods, |m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("`{m}` is not a valid method name, e.g. `PUT`"))
            })?;
            let value = join(list.iter().map(Method::as_str)).ok_or("field `cors.allow_methods`: invalid list")?;
            Methods::List(list, value)
        };

        let allow_headers = if wildcard("allow_headers", &settings.allow_headers, credentials)? {
            AllowHeaders::Mirror
        } else {
            let names = parse_list("allow_headers", &settings.allow_headers, header_name)?;
            let value = join(names.iter().map(HeaderName::as_str));
            AllowHeaders::List(names, value)
        };

        let expose_headers = if wildcard("expose_headers", &settings.expose_headers, credentials)? {
            Some(HeaderValue::from_static(WILDCARD))
        } else {
            let names = parse_list("expose_headers", &settings.expose_headers, header_name)?;
            join(names.iter().map(HeaderName::as_str))
        };

        let max_age = match settings.max_age_s {
            Some(s) if s > MAX_AGE_LIMIT_S => {
                return Err(format!(
                    "field `cors.max_age_s`: `{s}` is too large: it counts seconds, at most {MAX_AGE_LIMIT_S} \
                     (a day; browsers cap it, Chromium at 7200)"
                ));
            }
            Some(s) => Some(HeaderValue::from(s)),
            None => None,
        };

        Ok(Self {
            origins,
            methods,
            allow_headers,
            expose_headers,
            credentials,
            max_age,
        })
    }

    /// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    /// Any other `OPTIONS` request is an ordinary one for the function (or the router) to answer.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The host's full answer to a preflight (see [`CorsPolicy::is_preflight`]) for a route that serves
    /// `route_methods`; the guest is not called. Always `204`, with `Vary`. If the origin is allowed it adds
    /// `Access-Control-Allow-Origin`, `-Allow-Credentials` (when configured), `-Allow-Methods` (the configured
    /// list, else `route_methods`; mirrored for `*`), `-Allow-Headers` (the configured list; mirrored for `*`)
    /// and `-Max-Age` (when configured). A method or header not allowed leaves these in place: the browser
    /// refuses by comparing them (see the module docs); [`Preflight::refusal`] tells which check failed.
    pub fn preflight(&self, request_headers: &HeaderMap, route_methods: &[Method]) -> Preflight {
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(header::VARY, HeaderValue::from_static(VARY_PREFLIGHT));
        let Some(origin) = self.allowed_origin(request_headers) else {
            return Preflight {
                status: StatusCode::NO_CONTENT,
                headers,
                refusal: Some(Refusal::Origin),
            };
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }

        let requested = single(request_headers, &header::ACCESS_CONTROL_REQUEST_METHOD);
        let methods_value = match &self.methods {
            Methods::Route => join(route_methods.iter().map(Method::as_str)),
            Methods::Mirror => requested.cloned(),
            Methods::List(_, value) => Some(value.clone()),
        };
        if let Some(value) = methods_value {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
        }
        let method_ok = requested.is_some_and(|m| self.method_allowed(m.as_bytes(), route_methods));

        let headers_ok = match &self.allow_headers {
            AllowHeaders::Mirror => {
                for value in request_headers.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                    headers.append(header::ACCESS_CONTROL_ALLOW_HEADERS, value.clone());
                }
                true
            }
            AllowHeaders::List(names, value) => {
                if let Some(value) = value {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value.clone());
                }
                requested_headers_allowed(request_headers, names)
            }
        };
        if let Some(max_age) = &self.max_age {
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }

        let refusal = match (method_ok, headers_ok) {
            (false, _) => Some(Refusal::Method),
            (true, false) => Some(Refusal::Headers),
            (true, true) => None,
        };
        Preflight {
            status: StatusCode::NO_CONTENT,
            headers,
            refusal,
        }
    }

    /// Adds CORS to the response of an actual (non-preflight) request, whose headers are `request_headers`.
    /// It first removes every `access-control-*` header the guest set (the host's policy wins), then appends
    /// `Vary: origin` unless the response's `Vary` already covers it, then, only for a request with a single,
    /// allowed `Origin`: `Access-Control-Allow-Origin` (that origin, or `*`), `-Allow-Credentials` (when
    /// configured) and `-Expose-Headers` (when configured). A request without `Origin` gets only the `Vary`.
    /// Call it on every response of the function, the host's own errors (timeouts, overload) included, so
    /// scripts can read those too.
    pub fn apply(&self, request_headers: &HeaderMap, response_headers: &mut HeaderMap) {
        strip_access_control(response_headers);
        if !vary_covers_origin(response_headers) {
            response_headers.append(header::VARY, HeaderValue::from_static(VARY_ACTUAL));
        }
        let Some(origin) = self.allowed_origin(request_headers) else {
            return;
        };
        response_headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials {
            response_headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            response_headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request, if it has exactly one `Origin` and it is allowed.
    fn allowed_origin(&self, request_headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = single(request_headers, &header::ORIGIN)?;
        match &self.origins {
            Origins::Any => Some(HeaderValue::from_static(WILDCARD)),
            Origins::List(list) => list.iter().find(|o| o.as_bytes() == origin.as_bytes()).cloned(),
        }
    }

    /// Whether the browser will accept `method` (compared exactly, as browsers do) after this policy's answer.
    fn method_allowed(&self, method: &[u8], route_methods: &[Method]) -> bool {
        // Fetch: a CORS-safelisted method passes whatever Access-Control-Allow-Methods says.
        let listed = |list: &[Method]| list.iter().any(|m| m.as_str().as_bytes() == method);
        matches!(method, b"GET" | b"HEAD" | b"POST")
            || match &self.methods {
                Methods::Route => listed(route_methods),
                Methods::Mirror => true,
                Methods::List(list, _) => listed(list),
            }
    }
}

/// The value of `name` if the request has it exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// Whether every name in `Access-Control-Request-Headers` is in `allowed` (names compared case-insensitively).
fn requested_headers_allowed(request_headers: &HeaderMap, allowed: &[HeaderName]) -> bool {
    request_headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .all(|value| {
            value.to_str().is_ok_and(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .all(|name| allowed.iter().any(|a| a.as_str().eq_ignore_ascii_case(name)))
            })
        })
}

/// Whether the response's `Vary` already lists `origin` or `*`.
fn vary_covers_origin(headers: &HeaderMap) -> bool {
    headers.get_all(header::VARY).iter().any(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|t| t == WILDCARD || t.eq_ignore_ascii_case(VARY_ACTUAL))
        })
    })
}

/// Removes every `access-control-*` header; allocates only when there is one.
fn strip_access_control(headers: &mut HeaderMap) {
    let is_cors = |name: &HeaderName| name.as_str().starts_with("access-control-");
    if headers.keys().any(is_cors) {
        let names: Vec<HeaderName> = headers.keys().filter(|n| is_cors(n)).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }
}

/// `items` joined with ", " as a header value; `None` for no items.
fn join<'a>(mut items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let mut out = String::from(items.next()?);
    for item in items {
        out.push_str(", ");
        out.push_str(item);
    }
    HeaderValue::from_str(&out).ok()
}

/// Whether `list` is `["*"]`; refuses `*` mixed with other entries, or together with credentials.
fn wildcard(field: &str, list: &[String], credentials: bool) -> Result<bool, String> {
    if !list.iter().any(|s| s == WILDCARD) {
        return Ok(false);
    }
    if list.len() > 1 {
        return Err(format!(
            "field `cors.{field}`: `*` cannot be mixed with other entries; write [\"*\"] alone or list the entries"
        ));
    }
    if credentials {
        let (wildcard, what) = match field {
            "allow_origins" => ("origin".to_owned(), "origins"),
            "allow_methods" => (format!("in `cors.{field}`"), "methods"),
            _ => (format!("in `cors.{field}`"), "headers"),
        };
        return Err(format!(
            "field `cors.allow_credentials`: a wildcard {wildcard} cannot be combined with credentials; \
             list the {what} instead"
        ));
    }
    Ok(true)
}

/// Parses each entry of `list` (naming its index on error), dropping duplicates.
fn parse_list<T: PartialEq>(
    field: &str,
    list: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut out: Vec<T> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let item = parse(entry).map_err(|m| format!("field `cors.{field}[{i}]`: {m}"))?;
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

/// Parses a header name, lower-casing it.
fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name, e.g. `x-api-key`"))
}

/// Checks that `origin` is written exactly as a browser sends it: `scheme://host[:port]`.
fn check_origin(origin: &str) -> Result<(), String> {
    let form = "expected `scheme://host[:port]`, e.g. `https://app.example.com`";
    if origin == "null" {
        let why = "sandboxed frames and local files of any site send it; list the real origins instead";
        return Err(format!("`null` cannot be allowed: {why}"));
    }
    if !origin.is_ascii() {
        return Err(format!(
            "`{origin}` is not ASCII: browsers send international host names in punycode (`xn--…`); write that form"
        ));
    }
    if origin.contains('*') {
        return Err(format!(
            "`{origin}`: patterns are not supported; list each origin, or write [\"*\"] alone"
        ));
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(format!("`{origin}` is not an origin: {form}"));
    };
    if let Some(at) = rest.find('/') {
        let fixed = &origin[..scheme.len() + 3 + at];
        return Err(format!(
            "`{origin}` has a path or trailing slash, which browsers never send in `Origin`; write `{fixed}`"
        ));
    }
    if rest.contains(['?', '#', '@']) || rest.is_empty() || scheme.is_empty() {
        return Err(format!(
            "`{origin}` is not an origin: {form}, with no path, query or user name"
        ));
    }
    if origin.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "`{origin}` has upper-case letters, but browsers send origins in lower case and they are compared \
             exactly; write `{}`",
            origin.to_ascii_lowercase()
        ));
    }
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(format!("`{origin}` has an invalid scheme: {form}"));
    }
    // Split off the port; a bracketed IPv6 host holds colons itself.
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        }
    };
    if !host_ok {
        return Err(format!("`{origin}` has an invalid host: {form}"));
    }
    let Some(port) = port else { return Ok(()) };
    let number = port.parse::<u16>().ok().filter(|&n| n > 0 && !port.starts_with('0'));
    let Some(number) = number else {
        return Err(format!(
            "`{origin}` has an invalid port: expected 1 to 65535, without leading zeros"
        ));
    };
    let default = match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    if default == Some(number) {
        return Err(format!(
            "`{origin}` names the default port, which browsers leave out of `Origin`; write `{scheme}://{host}`"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
