//! The one error shape of every response the host itself produces:
//! `{"error": {"code", "message", "details"?}, "request_id"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered by the host, never by a guest. One status per code;
/// the table is in `docs/errors.md`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ApiError {
    NotFound {
        path: String,
    },
    MethodNotAllowed {
        method: String,
        allow: Vec<String>,
    },
    RouteConflict {
        route: String,
        method: String,
        functions: Vec<String>,
    },
    MisdirectedRequest {
        host: String,
    },
    InvalidPath {
        message: String,
    },
    PayloadTooLarge {
        limit: u64,
    },
    RequestBodyFailed {
        message: String,
    },
    TooManyRequests {
        function: String,
        reason: String,
        retry_after: u64,
    },
    ServiceUnavailable {
        reason: String,
        retry_after: u64,
    },
    GatewayTimeout {
        function: String,
        timeout_ms: u64,
    },
    FunctionError {
        function: String,
    },
    UnsupportedMediaType {
        got: String,
        expected: Vec<String>,
    },
    ValidationFailed {
        issues: Vec<crate::openapi::Issue>,
    },
    OutOfMemory {
        function: String,
        limit: u64,
    },
    ResponseTooLarge {
        function: String,
        size: u64,
        limit: u64,
    },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RouteConflict { .. } => StatusCode::CONFLICT,
            ApiError::MisdirectedRequest { .. } => StatusCode::MISDIRECTED_REQUEST,
            ApiError::InvalidPath { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestBodyFailed { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::FunctionError { .. } | ApiError::OutOfMemory { .. } | ApiError::ResponseTooLarge { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ValidationFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::RouteConflict { .. } => "route_conflict",
            ApiError::MisdirectedRequest { .. } => "misdirected_request",
            ApiError::InvalidPath { .. } => "invalid_path",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RequestBodyFailed { .. } => "request_body_failed",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::ServiceUnavailable { .. } => "service_unavailable",
            ApiError::GatewayTimeout { .. } => "gateway_timeout",
            ApiError::FunctionError { .. } => "function_error",
            ApiError::OutOfMemory { .. } => "out_of_memory",
            ApiError::ResponseTooLarge { .. } => "response_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::ValidationFailed { .. } => "validation_error",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::NotFound { path } => format!("no function serves `{path}`"),
            ApiError::MethodNotAllowed { method, allow } => {
                format!("`{method}` is not allowed here; allowed: {}", allow.join(", "))
            }
            ApiError::RouteConflict {
                route,
                method,
                functions,
            } => format!(
                "`{method} {route}` is claimed by several functions ({}); none serves it until the conflict is resolved",
                functions.join(", ")
            ),
            ApiError::MisdirectedRequest { host } => {
                format!("this route is not served for host `{host}`")
            }
            ApiError::InvalidPath { message } => message.clone(),
            ApiError::PayloadTooLarge { limit } => {
                format!("request body exceeds the limit of {limit} bytes")
            }
            ApiError::RequestBodyFailed { message } => format!("the request body could not be read: {message}"),
            ApiError::TooManyRequests { function, reason, .. } => format!("function `{function}` is busy: {reason}"),
            ApiError::ServiceUnavailable { reason, .. } => format!("the host is busy: {reason}"),
            ApiError::GatewayTimeout { function, timeout_ms } => {
                format!("function `{function}` did not respond within {timeout_ms} ms")
            }
            ApiError::FunctionError { function } => {
                format!("function `{function}` failed; the host log has the details under this request id")
            }
            ApiError::OutOfMemory { function, limit } => {
                format!("function `{function}` ran out of memory (limit {limit} bytes)")
            }
            ApiError::ResponseTooLarge { function, size, limit } => {
                format!("function `{function}` answered with {size} bytes, over `max_response_bytes` ({limit} bytes)")
            }
            ApiError::UnsupportedMediaType { got, expected } => {
                let got = if got.is_empty() {
                    "no `Content-Type`".to_string()
                } else {
                    format!("`{got}`")
                };
                format!("{got} is not accepted here; expected one of: {}", expected.join(", "))
            }
            ApiError::ValidationFailed { issues } => format!(
                "the request does not match the declared operation ({} problem{})",
                issues.len(),
                if issues.len() == 1 { "" } else { "s" }
            ),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            ApiError::MethodNotAllowed { allow, .. } => Some(json!({ "allow": allow })),
            ApiError::RouteConflict { route, functions, .. } => Some(json!({ "route": route, "functions": functions })),
            ApiError::ValidationFailed { issues } => Some(json!(issues)),
            ApiError::UnsupportedMediaType { expected, .. } => Some(json!({ "expected": expected })),
            _ => None,
        }
    }

    /// The response, with the request id in the body (the gateway adds the header).
    pub fn into_response_with(self, request_id: &str) -> Response {
        let mut body = json!({
            "error": { "code": self.code(), "message": self.message() },
            "request_id": request_id,
        });
        if let Some(d) = self.details() {
            body["error"]["details"] = d;
        }
        let mut resp = (self.status(), axum::Json(body)).into_response();
        let h = resp.headers_mut();
        match &self {
            ApiError::MethodNotAllowed { allow, .. } => {
                if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                    h.insert(header::ALLOW, v);
                }
            }
            ApiError::TooManyRequests { retry_after, .. } | ApiError::ServiceUnavailable { retry_after, .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with("")
    }
}
