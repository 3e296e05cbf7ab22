//! Bindings for the `wasmfn:function/function-with-handler` world, generated from the
//! repository's `wit/`. WASI types are the `wasip2` crate's own, but for
//! `wasi:config/store` and `wasi:keyvalue`, which that crate does not bind
//! (the SDK's [`config`](crate::config) and [`secret`](crate::secret) wrap
//! the first, [`kv`](crate::kv) the second).

wit_bindgen::generate!({
    path: "../wit",
    world: "wasmfn:function/function-with-handler",
    with: {
        "wasi:io/poll@0.2.12": ::wasi::io::poll,
        "wasi:io/error@0.2.12": ::wasi::io::error,
        "wasi:io/streams@0.2.12": ::wasi::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": ::wasi::clocks::monotonic_clock,
        "wasi:clocks/wall-clock@0.2.12": ::wasi::clocks::wall_clock,
        "wasi:random/random@0.2.12": ::wasi::random::random,
        "wasi:cli/stdout@0.2.12": ::wasi::cli::stdout,
        "wasi:cli/stderr@0.2.12": ::wasi::cli::stderr,
        "wasi:cli/stdin@0.2.12": ::wasi::cli::stdin,
        "wasi:http/types@0.2.12": ::wasi::http::types,
        "wasi:http/outgoing-handler@0.2.12": ::wasi::http::outgoing_handler,
        // Not in the `wasip2` crate: bound here (`bindings::wasi::config::store`).
        "wasi:config/store@0.2.0-rc.1": generate,
        // Nor these (`bindings::wasi::keyvalue`, wrapped by [`kv`](crate::kv)).
        "wasi:keyvalue/store@0.2.0-draft": generate,
        "wasi:keyvalue/atomics@0.2.0-draft": generate,
        "wasi:keyvalue/batch@0.2.0-draft": generate,
    },
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "wasmfn_sdk::bindings",
});
