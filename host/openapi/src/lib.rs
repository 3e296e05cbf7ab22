//! The unified OpenAPI 3.1 document of wasmfn: every function's fragment
//! (from its `describe` export or a sidecar file) mounted under its
//! routes, schema names namespaced per function, and request validators
//! compiled per operation at load.
//!
//! ```
//! use wasmfn_openapi::Fragment;
//!
//! let fragment = Fragment::parse(r#"{"paths": {"/{id}": {"get": {"responses": {"200": {"description": "ok"}}}}}}"#)?;
//! assert_eq!(fragment.paths.len(), 1);
//! assert!(Fragment::parse(r#"{"paths": {"no-slash": {}}}"#).is_err());
//! # Ok::<(), wasmfn_openapi::FragmentError>(())
//! ```
//!
//! - `fragment`: [`Fragment`], what one function declares, checked.
//! - `mount`: [`build_mounts`], a function's operations under each of its
//!   routes ([`Mount`], [`Operation`]).
//! - `answers`: what the host itself can answer for each operation (its
//!   errors, the `servers` of a route restricted to hosts), stated on it.
//! - `validate`: [`OperationValidator`], parameters and bodies checked
//!   before the guest runs, each failure an [`Issue`].
//! - `docs`: the Swagger UI page and its assets.
//! - this module: [`document`], the merged document.

mod answers;
mod docs;
mod fragment;
mod mount;
mod security;
mod validate;

use http::Method;
use serde_json::{Map, Value, json};
use utoipa::openapi::{InfoBuilder, OpenApiBuilder};

pub use docs::{SWAGGER_ASSETS, docs_page};
pub use fragment::{DeclaredPath, Fragment, FragmentError, template};
pub use mount::{Mount, MountError, Operation, build_mounts, host_schemas, namespace, namespaced_schemas};
pub use security::security_scheme;
pub use validate::{Issue, OperationValidator, Rejection, SchemaError, parse_query};

/// What the document needs to know of one loaded function.
pub struct DocFunction<'a> {
    /// The function's name, as in the catalog (`users/[id]`).
    pub name: &'a str,
    /// Its schema-name prefix and tag, from [`namespace`] (`users.id`).
    pub namespace: &'a str,
    /// The manifest's description: the tag's, when the fragment's `info` has none.
    pub description: Option<&'a str>,
    /// Its checked fragment; `None` without one (no `describe` export, no sidecar file).
    pub fragment: Option<&'a Fragment>,
    /// Where it came from (`directory`, `deployed`), stated on its tag as
    /// `x-wasmfn-origin`; `None` states nothing.
    pub origin: Option<&'a str>,
}

/// Builds the document from the functions and the routes that serve
/// (each mount with the methods it actually answers), so the document and
/// the catalog always agree. `extra` holds documents merged in first (the
/// host's own endpoints, when the operator asks for them).
pub fn document<'a>(
    functions: &[DocFunction<'a>],
    routes: impl IntoIterator<Item = (&'a Mount, Vec<Method>)>,
    extra: Option<Value>,
) -> Value {
    let base = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("wasmfn")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Every function served by this host, in one document."))
                .build(),
        )
        .build();
    let mut doc = serde_json::to_value(base).expect("the OpenAPI model serialises");
    doc["openapi"] = json!("3.1.0");
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut tags: Vec<Value> = Vec::new();
    let mut security_schemes = Map::new();
    if let Some(extra) = extra {
        if let Some(s) = extra["components"]["securitySchemes"].as_object() {
            security_schemes.extend(s.clone());
        }
        if let Some(p) = extra["paths"].as_object() {
            paths.extend(p.clone());
        }
        if let Some(s) = extra["components"]["schemas"].as_object() {
            schemas.extend(s.clone());
        }
        if let Some(t) = extra["tags"].as_array() {
            tags.extend(t.iter().cloned());
        }
    }
    for f in functions {
        schemas.extend(namespaced_schemas(f.fragment, f.namespace));
        let info = f.fragment.and_then(|fr| fr.info.as_ref());
        let description = info
            .and_then(|i| {
                i.get("description")
                    .or_else(|| i.get("summary"))
                    .or_else(|| i.get("title"))
            })
            .and_then(Value::as_str)
            .or(f.description)
            .map(str::to_string)
            .unwrap_or_else(|| format!("Function `{}`.", f.name));
        let mut tag = json!({"name": f.namespace, "description": description});
        if let Some(o) = f.origin {
            tag["x-wasmfn-origin"] = json!(o);
        }
        tags.push(tag);
        for t in f.fragment.map(|fr| fr.tags.as_slice()).unwrap_or_default() {
            if !tags.iter().any(|x| x["name"] == t["name"]) {
                tags.push(t.clone());
            }
        }
    }
    // Every operation states the host's answers, which name its error schemas.
    let mut host_answers = false;
    for (mount, methods) in routes {
        if !mount.in_schema {
            continue;
        }
        if let Some((name, scheme)) = mount.auth.as_ref().and_then(security_scheme) {
            security_schemes.entry(name).or_insert(scheme);
        }
        let item = paths
            .entry(template(&mount.pattern))
            .or_insert_with(|| Value::Object(Map::new()));
        for m in methods {
            let declared = mount.operations.iter().find(|(om, _)| *om == m);
            // HEAD is implied by GET; it is documented only when declared.
            let Some((_, op)) = declared else { continue };
            let key = m.as_str().to_ascii_lowercase();
            if item.get(&key).is_none() {
                item[key] = op.doc.clone();
                host_answers = true;
            }
        }
        if item.as_object().is_some_and(Map::is_empty) {
            paths.remove(&template(&mount.pattern));
        }
    }
    doc["paths"] = Value::Object(paths);
    if host_answers {
        let mut all = host_schemas();
        all.extend(schemas);
        schemas = all;
    }
    if !schemas.is_empty() {
        doc["components"] = json!({ "schemas": schemas });
    }
    if !security_schemes.is_empty() {
        doc["components"]["securitySchemes"] = Value::Object(security_schemes);
    }
    if !tags.is_empty() {
        doc["tags"] = Value::Array(tags);
    }
    doc
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
