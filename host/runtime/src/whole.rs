//! `wasmfn:function/handler`: a request handled whole, in one call into
//! the component, for components that export it (what the Rust SDK builds).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime::Store;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, ComponentType, Instance, Lift};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::state::InstanceState;

/// The export that handles requests whole.
pub const HANDLER_INTERFACE: &str = "wasmfn:function/handler@0.1.0";

/// `wasmfn:function/handler.response`.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct WholeResponse {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// `handle`'s parameters: method, path with query, headers, body.
type Params<'a> = (&'a str, &'a str, &'a [(&'a str, &'a [u8])], &'a [u8]);

/// `handle` of [`HANDLER_INTERFACE`], if the component exports it with the
/// type the WIT declares; an export of another type is an error (the
/// component was built against a different contract).
pub(crate) fn find(component: &Component) -> Result<Option<ComponentExportIndex>, String> {
    let Some((_, iface)) = component.get_export(None, HANDLER_INTERFACE) else {
        return Ok(None);
    };
    let Some((item, func)) = component.get_export(Some(&iface), "handle") else {
        return Err(format!("`{HANDLER_INTERFACE}` has no `handle` function"));
    };
    let ComponentItem::ComponentFunc(f) = item else {
        return Err(format!("`{HANDLER_INTERFACE}.handle` is not a function"));
    };
    let params: Vec<Type> = f.params().map(|(_, t)| t).collect();
    let results: Vec<Type> = f.results().collect();
    let fits = matches!(params.as_slice(), [m, p, h, b]
            if is_string(m) && is_string(p) && is_header_list(h) && is_bytes(b))
        && matches!(results.as_slice(), [Type::Option(o)] if is_response(&o.ty()));
    if fits {
        Ok(Some(func))
    } else {
        Err(format!(
            "`{HANDLER_INTERFACE}.handle` does not have the type `wit/wasmfn.wit` declares \
             (func(string, string, list<tuple<string, list<u8>>>, list<u8>) -> option<response>)"
        ))
    }
}

fn is_string(t: &Type) -> bool {
    matches!(t, Type::String)
}

fn is_bytes(t: &Type) -> bool {
    matches!(t, Type::List(l) if matches!(l.ty(), Type::U8))
}

fn is_header_list(t: &Type) -> bool {
    let Type::List(l) = t else { return false };
    let Type::Tuple(pair) = l.ty() else { return false };
    let parts: Vec<Type> = pair.types().collect();
    matches!(parts.as_slice(), [name, value] if is_string(name) && is_bytes(value))
}

fn is_response(t: &Type) -> bool {
    let Type::Record(r) = t else { return false };
    let fields: Vec<(String, Type)> = r.fields().map(|f| (f.name.to_string(), f.ty)).collect();
    matches!(fields.as_slice(), [(s, st), (h, ht), (b, bt)]
        if s == "status" && matches!(st, Type::U16)
            && h == "headers" && is_header_list(ht)
            && b == "body" && is_bytes(bt))
}

/// Calls `handle` with one request; `None` when the guest wants it served
/// through `wasi:http/incoming-handler` instead.
pub(crate) async fn call(
    store: &mut Store<InstanceState>,
    instance: &Instance,
    index: &ComponentExportIndex,
    parts: &http::request::Parts,
    body: &[u8],
) -> wasmtime::Result<Option<WholeResponse>> {
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let handle = instance.get_typed_func::<Params<'_>, (Option<WholeResponse>,)>(&mut *store, index)?;
    let (response,) = handle
        .call_async(&mut *store, (parts.method.as_str(), path, &headers, body))
        .await?;
    Ok(response)
}

/// The guest's response as the host sends it, checked as `wasi:http`
/// checks one: a status of 100–599, valid and allowed header names and
/// values, and a `content-length` (if any) that is the body's.
pub(crate) fn into_response(r: WholeResponse) -> Result<http::Response<HyperOutgoingBody>, String> {
    let status = StatusCode::from_u16(r.status)
        .ok()
        .filter(|s| (100..600).contains(&s.as_u16()))
        .ok_or_else(|| format!("invalid status code {}", r.status))?;
    let mut builder = http::Response::builder().status(status);
    let headers = builder.headers_mut().expect("a fresh builder has headers");
    headers.reserve(r.headers.len());
    for (name, value) in r.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name `{name}`"))?;
        if wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(&name) {
            return Err(format!("header `{name}` is not allowed in a response"));
        }
        let value = HeaderValue::from_bytes(&value).map_err(|_| format!("invalid value for header `{name}`"))?;
        if name == http::header::CONTENT_LENGTH {
            let declared = value.to_str().ok().and_then(|v| v.parse::<usize>().ok());
            if declared != Some(r.body.len()) {
                return Err(format!(
                    "`content-length: {}` but the body has {} bytes",
                    String::from_utf8_lossy(value.as_bytes()),
                    r.body.len()
                ));
            }
        }
        headers.append(name, value);
    }
    let body = Full::new(Bytes::from(r.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder.body(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &[u8])], body: &[u8]) -> WholeResponse {
        WholeResponse {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
            body: body.to_vec(),
        }
    }

    fn component(wat: &str) -> Component {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let bytes = wat::parse_str(wat).unwrap();
        Component::new(&wasmtime::Engine::new(&config).unwrap(), bytes).unwrap()
    }

    #[test]
    fn a_handler_of_another_type_is_a_load_error() {
        let none = component("(component)");
        assert!(matches!(find(&none), Ok(None)));
        let wrong = component(
            r#"(component
                (core module $m (func (export "f") (param i32)))
                (core instance $i (instantiate $m))
                (func $f (param "x" u32) (canon lift (core func $i "f")))
                (instance $h (export "handle" (func $f)))
                (export "wasmfn:function/handler@0.1.0" (instance $h)))"#,
        );
        let err = find(&wrong).expect_err("a load error");
        assert!(err.contains("does not have the type"), "{err}");
        let missing = component(
            r#"(component
                (core module $m (func (export "f")))
                (core instance $i (instantiate $m))
                (func $f (canon lift (core func $i "f")))
                (instance $h (export "other" (func $f)))
                (export "wasmfn:function/handler@0.1.0" (instance $h)))"#,
        );
        assert_eq!(
            find(&missing).expect_err("a load error"),
            "`wasmfn:function/handler@0.1.0` has no `handle` function"
        );
    }

    #[test]
    fn responses_are_checked_as_wasi_http_checks_them() {
        let ok = into_response(response(
            201,
            &[("content-type", b"text/plain"), ("x-a", b"1"), ("x-a", b"2")],
            b"hi",
        ))
        .unwrap();
        assert_eq!(ok.status(), 201);
        let values: Vec<_> = ok.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"], "repeated headers keep their order");

        let err = |r| into_response(r).unwrap_err();
        assert_eq!(err(response(99, &[], b"")), "invalid status code 99");
        assert_eq!(err(response(600, &[], b"")), "invalid status code 600");
        assert_eq!(
            err(response(200, &[("bad name", b"x")], b"")),
            "invalid header name `bad name`"
        );
        assert_eq!(
            err(response(200, &[("x-a", b"a\nb")], b"")),
            "invalid value for header `x-a`"
        );
        assert_eq!(
            err(response(200, &[("connection", b"close")], b"")),
            "header `connection` is not allowed in a response"
        );
        assert_eq!(
            err(response(200, &[("content-length", b"3")], b"hi")),
            "`content-length: 3` but the body has 2 bytes"
        );
        assert!(into_response(response(200, &[("content-length", b"2")], b"hi")).is_ok());
    }
}
