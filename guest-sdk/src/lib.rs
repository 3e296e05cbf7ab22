//! Write wasmfn functions in Rust: typed handlers whose OpenAPI schemas,
//! request validation and interactive docs come for free.
//!
//! ```no_run
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use wasmfn_sdk::{HttpError, Json, Path};
//!
//! /// A greeting.
//! #[derive(Serialize, JsonSchema)]
//! struct Greeting {
//!     message: String,
//! }
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Who {
//!     /// Who to greet.
//!     #[schemars(length(min = 1, max = 40))]
//!     name: String,
//! }
//!
//! fn greet(Path(who): Path<Who>) -> Result<Json<Greeting>, HttpError> {
//!     Ok(Json(Greeting { message: format!("Hello, {}!", who.name) }))
//! }
//!
//! wasmfn_sdk::function! {
//!     title: "Greeter",
//!     /// Greets someone by name.
//!     get "/{name}" => greet,
//! }
//! # fn main() {}
//! ```
//!
//! Each `method "path" => handler` line is one operation: the host routes
//! to it, checks requests against the schemas derived from the handler's
//! argument and return types, and shows it in the unified document.
//! Doc comments become the summary and description.
//!
//! The component exports `wasmfn:function/handler` as well as
//! `wasi:http/incoming-handler`: the host gives each request whole in one
//! call and takes back a complete response, which costs far less than
//! reading and writing through `wasi:http` resources. Operations that
//! return [`JsonLines`] stream through `wasi:http` instead.

pub mod bindings;
mod describe;
mod extract;
mod request;
mod respond;

pub use describe::{App, Handler, OperationDoc};
pub use extract::{Body, FromRequest, Headers, Path, Query, RequestInfo};
pub use request::{Method, Request, methods};
pub use respond::{
    Bytes, Created, ErrorBody, HttpError, IntoResponse, JSON_LINES, Json, JsonLines, JsonStatus, NoContent, Response,
    ResponseBody, Text, WithHeaders,
};

#[doc(hidden)]
pub use wasi;

use wasi::http::types::{ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Checks, at the author's handler, that it is one.
#[doc(hidden)]
pub fn handler<H: Handler<Args>, Args>(h: H) -> H {
    h
}

/// Runs `app` for one request (what the [`function!`] export calls).
#[doc(hidden)]
pub fn __serve(app: &App, request: IncomingRequest, out: ResponseOutparam) {
    let mut req = Request::from_wasi(request);
    let resp = app.serve(&mut req);
    drop(req);
    // Refused headers fail the response, as they do when it is sent whole;
    // the host logs the reason.
    let headers = match Fields::from_list(&resp.headers) {
        Ok(headers) => headers,
        Err(e) => {
            let reason = format!("response headers refused: {e:?}");
            ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(reason))));
            return;
        }
    };
    let response = OutgoingResponse::new(headers);
    // A new response is 200 already: one call out of the sandbox fewer.
    if resp.status != 200 && response.set_status_code(resp.status).is_err() {
        let _ = response.set_status_code(500);
    }
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    let Ok(stream) = body.write() else { return };
    let write = |bytes: &[u8]| bytes.chunks(4096).all(|c| stream.blocking_write_and_flush(c).is_ok());
    let complete = match resp.body {
        respond::ResponseBody::Bytes(b) => write(&b),
        respond::ResponseBody::Stream(items) => {
            let mut ok = true;
            for chunk in items {
                if !write(&chunk) {
                    ok = false;
                    break;
                }
            }
            ok
        }
    };
    drop(stream);
    if complete {
        let _ = OutgoingBody::finish(body, None);
    }
}

/// Runs `app` for one request given whole (what the [`function!`] export
/// of `wasmfn:function/handler` calls); `None` when its response streams.
#[doc(hidden)]
pub fn __serve_whole(
    app: &App,
    method: &str,
    path_with_query: &str,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
) -> Option<bindings::exports::wasmfn::function::handler::Response> {
    let mut req = Request::from_whole(method, path_with_query, headers, body);
    let resp = app.serve_whole(&mut req)?;
    let body = match resp.body {
        respond::ResponseBody::Bytes(b) => b,
        // `serve_whole` gathers streams.
        respond::ResponseBody::Stream(items) => items.flatten().collect(),
    };
    Some(bindings::exports::wasmfn::function::handler::Response {
        status: resp.status,
        headers: resp.headers,
        body,
    })
}

/// Declares a function's operations and exports it as a component.
///
/// ```text
/// wasmfn_sdk::function! {
///     title: "Items",                 // optional
///     /// Lists items.                // doc comments: summary, description
///     get "/" => list,
///     post "/" => create,
///     get "/{id}" => show,
/// }
/// ```
#[macro_export]
macro_rules! function {
    (title: $title:literal, $($rest:tt)*) => {
        $crate::__function!(::core::option::Option::Some($title); $($rest)*);
    };
    ($($rest:tt)*) => {
        $crate::__function!(::core::option::Option::None; $($rest)*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __function {
    (
        $title:expr;
        $( $(#[doc = $doc:literal])* $method:ident $path:literal => $handler:path ),* $(,)?
    ) => {
        struct __WasmfnFunction;

        fn __wasmfn_app() -> $crate::App {
            $crate::App::new($title)
                $( .route($crate::methods::$method, $path, stringify!($handler), &[$($doc),*], $crate::handler($handler)) )*
        }

        impl $crate::bindings::exports::wasi::http::incoming_handler::Guest for __WasmfnFunction {
            fn handle(
                request: $crate::wasi::http::types::IncomingRequest,
                out: $crate::wasi::http::types::ResponseOutparam,
            ) {
                $crate::__serve(&__wasmfn_app(), request, out)
            }
        }

        impl $crate::bindings::exports::wasmfn::function::handler::Guest for __WasmfnFunction {
            fn handle(
                method: ::std::string::String,
                path_with_query: ::std::string::String,
                headers: ::std::vec::Vec<(::std::string::String, ::std::vec::Vec<u8>)>,
                body: ::std::vec::Vec<u8>,
            ) -> ::core::option::Option<$crate::bindings::exports::wasmfn::function::handler::Response> {
                $crate::__serve_whole(&__wasmfn_app(), &method, &path_with_query, headers, body)
            }
        }

        impl $crate::bindings::exports::wasmfn::function::metadata::Guest for __WasmfnFunction {
            fn describe() -> ::std::string::String {
                __wasmfn_app().describe()
            }
        }

        $crate::bindings::export!(__WasmfnFunction with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests;
