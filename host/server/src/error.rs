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
    /// 404 `not_found`: no function serves the request's path.
    NotFound {
        /// The request's path, as it came (not decoded).
        path: String,
    },
    /// 405 `method_not_allowed`: the path is served, but not for this method.
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The methods the path is served for; sent as `Allow` and `details.allow`.
        allow: Vec<String>,
    },
    /// 409 `route_conflict`: several functions claim this route and method, so none serves it.
    RouteConflict {
        /// The contested route pattern; sent as `details.route`.
        route: String,
        /// The request's method.
        method: String,
        /// The names of the functions claiming the route; sent as `details.functions`.
        functions: Vec<String>,
    },
    /// 421 `misdirected_request`: the route exists but is not served for the request's `Host`.
    MisdirectedRequest {
        /// The request's host name, without its port.
        host: String,
    },
    /// 400 `invalid_path`: the path has a `.`/`..` segment, is not UTF-8 once decoded, or has a control character.
    InvalidPath {
        /// What is wrong with the path; sent as the message.
        message: String,
    },
    /// 413 `payload_too_large`: the request body is over the function's `max_body_bytes`.
    PayloadTooLarge {
        /// The function's `max_body_bytes`, in bytes.
        limit: u64,
    },
    /// 400 `request_body_failed`: the client's body broke off before the end, for a function that
    /// takes its requests whole.
    RequestBodyFailed {
        /// Why reading the body failed.
        message: String,
    },
    /// 429 `too_many_requests`: the function's slots and queue are full, or the wait ran out
    /// (`overflow_status: 429`).
    TooManyRequests {
        /// The function's name.
        function: String,
        /// Why no slot was given (the [`GateError`](crate::admission::GateError), as text).
        reason: String,
        /// Seconds the client should wait before retrying; sent as `Retry-After`.
        retry_after: u64,
    },
    /// 503 `service_unavailable`: as `TooManyRequests` with `overflow_status: 503`, or the host-wide
    /// `--max-concurrency` is exhausted, or no instance slot is free.
    ServiceUnavailable {
        /// Why the request was refused.
        reason: String,
        /// Seconds the client should wait before retrying; sent as `Retry-After`.
        retry_after: u64,
    },
    /// 504 `gateway_timeout`: the function sent no response head within its `timeout_ms`.
    GatewayTimeout {
        /// The function's name.
        function: String,
        /// The function's `timeout_ms`, in ms.
        timeout_ms: u64,
    },
    /// 500 `function_error`: the guest trapped, returned an error, sent no response, or sent an
    /// invalid one; the details are only in the log.
    FunctionError {
        /// The function's name.
        function: String,
    },
    /// 415 `unsupported_media_type`: the body's `Content-Type` is not one the operation declares.
    UnsupportedMediaType {
        /// The request's `Content-Type`; empty when it had none.
        got: String,
        /// The media types the operation declares; sent as `details.expected`.
        expected: Vec<String>,
    },
    /// 422 `validation_error`: the parameters or JSON body do not match the declared operation.
    ValidationFailed {
        /// Each mismatch found; sent as `details`.
        issues: Vec<wasmfn_openapi::Issue>,
    },
    /// 500 `out_of_memory`: the guest hit its `max_memory_bytes`.
    OutOfMemory {
        /// The function's name.
        function: String,
        /// The function's `max_memory_bytes`, in bytes.
        limit: u64,
    },
    /// 500 `response_too_large`: the guest's response body, its size known before the head went out,
    /// is over `max_response_bytes`.
    ResponseTooLarge {
        /// The function's name.
        function: String,
        /// The response body's size, in bytes.
        size: u64,
        /// The function's `max_response_bytes`, in bytes.
        limit: u64,
    },
    /// 500 `reload_failed`: `POST /_fn/reload` could not read the functions directory; what is
    /// serving is unchanged.
    ReloadFailed {
        /// Why the directory could not be loaded.
        message: String,
    },
    /// 503 `shutting_down`: the host is draining; `/_fn/ready` answers it from the first signal,
    /// and a request still running when the drain runs out of time is interrupted with it.
    ShuttingDown,
    /// 503 `version_retired`: the request ran on a version of the function that was replaced or
    /// removed, and was still running when that version's drain ran out.
    VersionRetired {
        /// The function's name.
        function: String,
    },
    /// 401 `unauthorized`: an admin endpoint without a bearer token, or with one this host does
    /// not know; sent with `WWW-Authenticate: Bearer`.
    Unauthorized {
        /// What is missing.
        message: String,
    },
    /// 403 `forbidden`: the token lacks the scope, or the host's admin surface does not take this
    /// request without a token (loopback only, read-only).
    Forbidden {
        /// Why, and how to get access.
        message: String,
    },
    /// 422 `invalid_function`: a deploy whose manifest, fragment or component is not a valid
    /// function, or a name that is not one; what serves is unchanged.
    InvalidFunction {
        /// What is wrong, naming the field or part.
        message: String,
    },
    /// 409 `deploy_conflict`: a deploy or rollback whose routes other functions serve, or a name of
    /// the functions directory; what serves is unchanged.
    DeployConflict {
        /// What conflicts.
        message: String,
        /// The functions involved; sent as `details.functions`.
        functions: Vec<String>,
    },
    /// 409 `no_previous_version`: a rollback of a function with a single version.
    NoPreviousVersion {
        /// The function's name.
        function: String,
    },
    /// 404 `function_not_found`: no deployed function has this name.
    FunctionNotFound {
        /// The name asked for.
        function: String,
    },
    /// 413 `deploy_too_large`: the upload is over `--max-deploy-bytes`.
    DeployTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// 400 `bad_upload`: the deploy request is not a `multipart/form-data` body with the parts
    /// it needs.
    BadUpload {
        /// What is wrong, and what is expected.
        message: String,
    },
    /// 422 `invalid_artifact`: a deploy from an OCI registry whose reference, tag, digest or
    /// artifact cannot be used (not found, refused, not a component, digest mismatch, too
    /// large); what serves is unchanged.
    InvalidArtifact {
        /// What is wrong, naming the reference, and the fix.
        message: String,
    },
    /// 502 `registry_unavailable`: a deploy from an OCI registry that did not answer, or failed;
    /// what serves is unchanged.
    RegistryUnavailable {
        /// The reference and what the connection said.
        message: String,
    },
    /// 409 `state_conflict`: another host sharing the state store changed the desired state
    /// meanwhile; nothing changed, retry.
    StateConflict {
        /// What happened.
        message: String,
    },
    /// 503 `state_store_unavailable`: the shared state store (`--state-store`) cannot be
    /// reached; nothing changed.
    StateStoreUnavailable {
        /// The store's error.
        message: String,
    },
    /// 500 `state_failed`: the state directory could not be written; nothing changed.
    StateFailed {
        /// The file and the system's reason.
        message: String,
    },
    /// 401 `unauthorized` or 403 `forbidden` for a function's caller: no or bad credentials, or
    /// missing scopes; sent with the route's `WWW-Authenticate` challenge.
    CallerRefused {
        /// 401 or 403.
        status: u16,
        /// Why.
        message: String,
        /// The `WWW-Authenticate` value.
        challenge: String,
    },
    /// 429 `rate_limited`: the tenant's `requests_per_second` (with its `burst`) is used up.
    RateLimited {
        /// The tenant's quota, `(requests_per_second, burst)`.
        rate: (u32, u32),
        /// Seconds until a request is admitted again; sent as `Retry-After`.
        retry_after: u64,
    },
    /// 422 `quota_exceeded`: a deploy beyond the tenant's `max_functions`, `max_memory_bytes` or
    /// outbound ceiling; what serves is unchanged.
    QuotaExceeded {
        /// Which quota, and what to do.
        message: String,
    },
    /// 404 `tenant_not_found`: no such tenant (or not one the token may see).
    TenantNotFound {
        /// The id asked for.
        tenant: String,
    },
    /// 422 `invalid_tenant`: the tenant's id or settings do not check.
    InvalidTenant {
        /// What is wrong, naming the field.
        message: String,
    },
    /// 409 `tenant_conflict`: a host another tenant serves, a tenant fixed by `--tenants FILE`,
    /// quotas its functions exceed, a key id taken; nothing changed.
    TenantConflict {
        /// What conflicts.
        message: String,
    },
    /// 404 `metrics_disabled`: `/_fn/metrics` on a host started with `--no-metrics`.
    MetricsDisabled,
    /// 404 `secret_not_found`: no secret of this name was set through the admin API.
    SecretNotFound {
        /// The name asked for.
        name: String,
    },
    /// 409 `secrets_unavailable`: the host cannot keep secrets set through the admin API.
    SecretsUnavailable {
        /// Why, and the flag that gives it.
        message: String,
    },
    /// 422 `invalid_secret`: a secret's name or value that is not allowed.
    InvalidSecret {
        /// What is wrong (never the value).
        message: String,
    },
    /// 400 `bad_query`: a query parameter of an admin endpoint that does not parse.
    BadQuery {
        /// Which parameter, and what it takes.
        message: String,
    },
}

impl ApiError {
    /// The answer to a state change that could not be stored.
    pub(crate) fn state(e: &crate::state::StateError) -> Self {
        match e {
            crate::state::StateError::Shared {
                message,
                conflict: true,
            } => ApiError::StateConflict {
                message: message.clone(),
            },
            crate::state::StateError::Shared { message, .. } => ApiError::StateStoreUnavailable {
                message: format!("the shared state store cannot be reached, so nothing changed: {message}"),
            },
            e => ApiError::StateFailed { message: e.to_string() },
        }
    }

    /// The HTTP status this error is answered with.
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
            ApiError::ReloadFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ShuttingDown | ApiError::VersionRetired { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::InvalidFunction { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::DeployConflict { .. } | ApiError::NoPreviousVersion { .. } => StatusCode::CONFLICT,
            ApiError::FunctionNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::DeployTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadUpload { .. } => StatusCode::BAD_REQUEST,
            ApiError::StateFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::StateConflict { .. } => StatusCode::CONFLICT,
            ApiError::StateStoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InvalidArtifact { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RegistryUnavailable { .. } => StatusCode::BAD_GATEWAY,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ValidationFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::CallerRefused { status: 403, .. } => StatusCode::FORBIDDEN,
            ApiError::CallerRefused { .. } => StatusCode::UNAUTHORIZED,
            ApiError::QuotaExceeded { .. } | ApiError::InvalidTenant { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TenantNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::TenantConflict { .. } => StatusCode::CONFLICT,
            ApiError::MetricsDisabled | ApiError::SecretNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::SecretsUnavailable { .. } => StatusCode::CONFLICT,
            ApiError::InvalidSecret { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadQuery { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// The stable code sent as `error.code` (the `code` column of `docs/errors.md`).
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
            ApiError::ReloadFailed { .. } => "reload_failed",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::VersionRetired { .. } => "version_retired",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::InvalidFunction { .. } => "invalid_function",
            ApiError::DeployConflict { .. } => "deploy_conflict",
            ApiError::NoPreviousVersion { .. } => "no_previous_version",
            ApiError::FunctionNotFound { .. } => "function_not_found",
            ApiError::DeployTooLarge { .. } => "deploy_too_large",
            ApiError::BadUpload { .. } => "bad_upload",
            ApiError::StateFailed { .. } => "state_failed",
            ApiError::StateConflict { .. } => "state_conflict",
            ApiError::StateStoreUnavailable { .. } => "state_store_unavailable",
            ApiError::InvalidArtifact { .. } => "invalid_artifact",
            ApiError::RegistryUnavailable { .. } => "registry_unavailable",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::CallerRefused { status: 403, .. } => "forbidden",
            ApiError::CallerRefused { .. } => "unauthorized",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::TenantNotFound { .. } => "tenant_not_found",
            ApiError::InvalidTenant { .. } => "invalid_tenant",
            ApiError::TenantConflict { .. } => "tenant_conflict",
            ApiError::MetricsDisabled => "metrics_disabled",
            ApiError::SecretNotFound { .. } => "secret_not_found",
            ApiError::SecretsUnavailable { .. } => "secrets_unavailable",
            ApiError::InvalidSecret { .. } => "invalid_secret",
            ApiError::BadQuery { .. } => "bad_query",
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
            ApiError::ShuttingDown => "the host is shutting down; retry on another instance".into(),
            ApiError::VersionRetired { function } => format!(
                "this request ran on a version of function `{function}` that was replaced or removed, \
                 and outlived its drain; retry"
            ),
            ApiError::Unauthorized { message }
            | ApiError::Forbidden { message }
            | ApiError::InvalidFunction { message }
            | ApiError::DeployConflict { message, .. }
            | ApiError::BadUpload { message }
            | ApiError::InvalidArtifact { message }
            | ApiError::StateConflict { message }
            | ApiError::StateStoreUnavailable { message }
            | ApiError::RegistryUnavailable { message }
            | ApiError::QuotaExceeded { message }
            | ApiError::InvalidTenant { message }
            | ApiError::TenantConflict { message }
            | ApiError::BadQuery { message }
            | ApiError::SecretsUnavailable { message }
            | ApiError::InvalidSecret { message }
            | ApiError::CallerRefused { message, .. } => message.clone(),
            ApiError::RateLimited { rate, .. } => format!(
                "too many requests: this API takes {} per second (bursts of {}); retry after `Retry-After` seconds",
                rate.0, rate.1
            ),
            ApiError::TenantNotFound { tenant } => format!("no tenant `{tenant}`"),
            ApiError::SecretNotFound { name } => {
                format!("no secret `{name}` was set through the admin API")
            }
            ApiError::MetricsDisabled => {
                "this host records no metrics (started with `--no-metrics`); start it without that flag".into()
            }

            ApiError::NoPreviousVersion { function } => {
                format!("function `{function}` has no earlier version to roll back to")
            }
            ApiError::FunctionNotFound { function } => format!("no function `{function}` is deployed"),
            ApiError::DeployTooLarge { limit } => {
                format!("the upload is over this host's limit of {limit} bytes (`--max-deploy-bytes`)")
            }
            ApiError::StateFailed { message } => {
                format!("the state directory could not be written, so nothing changed: {message}")
            }
            ApiError::ReloadFailed { message } => {
                format!("the functions directory could not be loaded; what is serving is unchanged: {message}")
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
            ApiError::DeployConflict { functions, .. } => Some(json!({ "functions": functions })),
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
            ApiError::TooManyRequests { retry_after, .. }
            | ApiError::ServiceUnavailable { retry_after, .. }
            | ApiError::RateLimited { retry_after, .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::VersionRetired { .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            ApiError::CallerRefused { challenge, .. } => {
                if let Ok(v) = HeaderValue::from_str(challenge) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            ApiError::ShuttingDown => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(1));
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
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
