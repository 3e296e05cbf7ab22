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

fn instantiate_and_handle(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/hello/hello.wasm");
    let Ok(bytes) = std::fs::read(&path) else {
        panic!("{} is missing: run `wasmfn build functions` first", path.display());
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let component = runtime.compile("hello.wasm", &bytes).unwrap();
    let tags = InvokeTags {
        function: "hello".into(),
        request_id: "bench".into(),
    };
    c.bench_function("instantiate + handle (hello)", |b| {
        b.to_async(&rt).iter(|| async {
            let request = http::Request::builder()
                .uri("/hello")
                .header("host", "localhost")
                .body(LimitedBody::new(
                    Empty::<bytes::Bytes>::new(),
                    0,
                    Arc::new(AtomicBool::new(false)),
                ))
                .unwrap();
            let resp = runtime
                .invoke(
                    &component,
                    InvokeRequest {
                        request,
                        tags: tags.clone(),
                        deadline: Instant::now() + Duration::from_secs(5),
                        max_memory_bytes: 128 << 20,
                        outbound: Arc::from([]),
                        guard: Box::new(()),
                    },
                )
                .await
                .unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"Hello from wasmfn!\n");
        })
    });
}

criterion_group!(benches, route_lookup, instantiate_and_handle);
criterion_main!(benches);
