//! In-process microbenchmarks: route lookup among 10,000 routes, and one
//! request through a fresh instance of the hello component (build it first:
//! `wasmfn build functions`; `benches/run` does).
//!
//! `cargo bench -p wasmfn --bench micro`

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use http_body_util::{BodyExt, Empty};
use wasmfn::policy::LimitedBody;
use wasmfn::routing::{RouteClaim, RoutePattern, RouteTable, split_path};
use wasmfn::runtime::{InvokeRequest, InvokeTags, Runtime, RuntimeConfig};

fn route_lookup(c: &mut Criterion) {
    let claims = (0..10_000)
        .map(|i| RouteClaim {
            function: i,
            function_name: format!("f{i}"),
            pattern: RoutePattern::parse(&format!("/api/fn{i}/items/{{id}}")).unwrap(),
            methods: vec![Method::GET],
            hosts: vec![],
            force_url: false,
            tag: i,
        })
        .collect();
    let table = RouteTable::build(claims);
    c.bench_function("route lookup among 10,000 routes", |b| {
        b.iter(|| {
            let segs = split_path(std::hint::black_box("/api/fn7777/items/42")).unwrap();
            let out = table.route(&Method::GET, "localhost", None, &segs);
            std::hint::black_box(matches!(out, wasmfn::routing::RouteOutcome::Matched(_)));
        })
    });
}

/// One request through a fresh instance of `hello`, with the default
/// pooling settings and, for comparison in the same run, with others
/// (`WASMFN_BENCH_VARIANTS=1`).
fn instantiate_and_handle(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/hello/hello.wasm");
    let Ok(bytes) = std::fs::read(&path) else {
        panic!("{} is missing: run `wasmfn build functions` first", path.display());
    };
    // One thread: the figure is the work of a request, not the latency of
    // waking another thread (which a loaded server rarely pays).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut variants = vec![("default", RuntimeConfig::default())];
    if std::env::var_os("WASMFN_BENCH_VARIANTS").is_some() {
        let with = |keep: u64, cow: bool, pooling: bool| RuntimeConfig {
            keep_resident: Some(keep),
            memory_cow: cow,
            pooling,
            ..RuntimeConfig::default()
        };
        variants.extend([
            ("keep 64 KiB", with(64 << 10, true, true)),
            ("keep 2 MiB", with(2 << 20, true, true)),
            ("keep 16 MiB, no CoW", with(16 << 20, false, true)),
            ("on-demand allocator", with(0, true, false)),
        ]);
    }
    for (label, config) in variants {
        let runtime = Runtime::new(config).unwrap();
        let component = runtime.compile("hello.wasm", &bytes).unwrap();
        let name = if label == "default" {
            "instantiate + handle (hello)".to_string()
        } else {
            format!("instantiate + handle (hello), {label}")
        };
        c.bench_function(&name, |b| b.to_async(&rt).iter(|| one_request(&runtime, &component)));
    }
}

async fn one_request(runtime: &Runtime, component: &wasmfn::runtime::CompiledComponent) {
    let request = http::Request::builder()
        .uri("/hello")
        .header("host", "localhost")
        // As the gateway sends it: the operation the route matched.
        .header("x-fn-path", "/")
        .body(LimitedBody::new(
            Empty::<bytes::Bytes>::new(),
            0,
            Arc::new(AtomicBool::new(false)),
        ))
        .unwrap();
    let resp = runtime
        .invoke(
            component,
            InvokeRequest {
                request,
                tags: InvokeTags {
                    function: "hello".into(),
                    request_id: "bench".into(),
                },
                deadline: Instant::now() + Duration::from_secs(5),
                max_memory_bytes: 128 << 20,
                outbound: Arc::from([]),
                guard: Box::new(()),
                warm: None,
            },
        )
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Hello from wasmfn!\n");
}

// The allocator the host itself runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

criterion_group!(benches, route_lookup, instantiate_and_handle);
criterion_main!(benches);
