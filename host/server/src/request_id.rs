//! Request ids: a client's `x-request-id` is kept when it is sane (1–128
//! visible characters of `[A-Za-z0-9-_.:]`), otherwise the host makes one
//! (32 hex digits). The id is settled once per request, put in the request
//! the guest sees and in the response, and named in every error and log
//! line about that request.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

/// The header that carries the request id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Keeps a client's request id when it is sane, otherwise makes one.
pub fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok())
        && (1..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return v.to_string();
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = u128::from(fastrand::u64(..)) << 64 | u128::from(fastrand::u64(..));
    (0..32)
        .map(|i| char::from(HEX[(random >> (124 - 4 * i)) as usize & 15]))
        .collect()
}

/// The request id of `req`, settled: written into its headers, and
/// returned as the header value for the response.
pub(crate) fn settle(req: &mut Request) -> (String, HeaderValue) {
    let id = request_id(req.headers());
    let value = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    req.headers_mut().insert(REQUEST_ID, value.clone());
    (id, value)
}

/// Middleware for the `/_fn/*` endpoints: settles the request id once, in
/// the request header (for the handlers) and in the response.
pub(crate) async fn with_request_id(mut req: Request, next: axum::middleware::Next) -> Response {
    let (_, value) = settle(&mut req);
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(REQUEST_ID, value);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        let made = request_id(&h);
        assert_eq!(made.len(), 32);
        assert!(
            made.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{made}"
        );
        assert_ne!(made, request_id(&h), "each request gets its own id");
        h.insert(REQUEST_ID, HeaderValue::from_static("client-id_1.2:3"));
        assert_eq!(request_id(&h), "client-id_1.2:3");
        for bad in ["has space", "semi;colon", ""] {
            h.insert(REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            assert_eq!(request_id(&h).len(), 32, "{bad:?} is replaced");
        }
        h.insert(REQUEST_ID, HeaderValue::from_str(&"x".repeat(129)).unwrap());
        assert_eq!(request_id(&h).len(), 32, "too long is replaced");
    }

    #[test]
    fn a_settled_id_is_in_the_request() {
        let mut req = Request::new(axum::body::Body::empty());
        let (id, value) = settle(&mut req);
        assert_eq!(req.headers()[&REQUEST_ID], value);
        assert_eq!(value.to_str().unwrap(), id);
    }
}
