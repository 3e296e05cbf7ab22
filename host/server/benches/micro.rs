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
use wasmfn_routing::{RouteClaim, RoutePattern, RouteTable, split_path};
use wasmfn_runtime::{InvokeRequest, InvokeTags, Runtime, RuntimeConfig};
use wasmfn_server::admission::LimitedBody;

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
            std::hint::black_box(matches!(out, wasmfn_routing::RouteOutcome::Matched(_)));
        })
    });
}

/// The baseline for the in-process figures, measured in the same run: the
/// smallest component the host serves the way it serves hello (one core
/// module with one page of memory and no imports, exporting
/// `wasmfn:function/handler` with hello's answer), so the ratio of hello to
/// it says what the guest toolchain's component costs on top of wasmtime
/// and the host on whatever machine runs the bench.
const FLOOR_WAT: &str = include_str!("floor/floor.wat");

/// One request through a fresh instance of `hello`, with the default
/// pooling settings and, for comparison in the same run, with others
/// (`WASMFN_BENCH_VARIANTS=1`); the same for the floor component.
fn instantiate_and_handle(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../functions/hello/hello.wasm");
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
    let with_variants = variants.len() > 1;
    for (label, config) in variants {
        let runtime = Runtime::new(config).unwrap();
        let component = runtime.compile("hello.wasm", &bytes).unwrap();
        if label == "default" {
            let floor = wat::parse_str(FLOOR_WAT).expect("floor.wat parses");
            let floor = runtime.compile("floor.wat", &floor).expect("floor.wat loads");
            assert!(floor.handles_whole(), "the floor is served as hello is");
            c.bench_function("instantiate + handle (floor: one core module, no imports)", |b| {
                b.to_async(&rt).iter(|| async {
                    one_request(&runtime, &floor, None).await;
                    tokio::task::yield_now().await;
                })
            });
        }
        if with_variants && label == "default" {
            // The path every component without `wasmfn:function/handler`
            // takes (and the one `wasmtime serve` takes for hello).
            let wasi = component.through_wasi_http();
            c.bench_function("instantiate + handle (hello), through wasi:http", |b| {
                b.to_async(&rt).iter(|| async {
                    one_request(&runtime, &wasi, None).await;
                    tokio::task::yield_now().await;
                })
            });
        }
        let name = if label == "default" {
            "instantiate + handle (hello)".to_string()
        } else {
            format!("instantiate + handle (hello), {label}")
        };
        c.bench_function(&name, |b| {
            b.to_async(&rt).iter(|| async {
                one_request(&runtime, &component, None).await;
                // The finished instance's teardown (a task of its own, as in
                // the server) runs inside the measurement too.
                tokio::task::yield_now().await;
            })
        });
        if label == "default" {
            // The part of the request the client waits for when a warm
            // instance is ready (the server's usual case): the instance was
            // made before the clock starts, and is dropped (and the next one
            // made) after it stops.
            let slot = runtime.warm_slot(
                &component,
                "hello".into(),
                None,
                128 << 20,
                wasmfn_runtime::Capabilities::default(),
                Duration::from_secs(5),
            );
            // The first request finds the slot empty; the slot fills after it.
            rt.block_on(one_request(&runtime, &component, Some(slot.clone())));
            c.bench_function("handle on a warm instance (hello)", |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (runtime, component, slot) = (&runtime, &component, slot.clone());
                    async move {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            while !slot.is_ready() {
                                tokio::task::yield_now().await;
                            }
                            let start = Instant::now();
                            one_request(runtime, component, Some(slot.clone())).await;
                            spent += start.elapsed();
                        }
                        spent
                    }
                })
            });
        }
    }
}

async fn one_request(
    runtime: &Runtime,
    component: &wasmfn_runtime::CompiledComponent,
    warm: Option<Arc<wasmfn_runtime::WarmSlot>>,
) {
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
                    tenant: "default".into(),
                    function: "hello".into(),
                    request_id: "bench".into(),
                },
                deadline: Instant::now() + Duration::from_secs(5),
                max_memory_bytes: 128 << 20,
                capabilities: wasmfn_runtime::Capabilities::default(),
                guard: Box::new(()),
                warm,
                lanes: None,
                reuse: None,
                retire: None,
                observer: None,
                output: None,
                shared_observer: None,
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

/// `WASMFN_BENCH_AB=other.wasm`: the hello component against another build
/// of it (say, with a changed SDK), request by request in alternation so a
/// drift in the machine's speed lands on both; prints both medians and the
/// median of the paired differences, fresh instance and warm instance.
fn compare_builds(_c: &mut Criterion) {
    let Some(other) = std::env::var_os("WASMFN_BENCH_AB") else {
        return;
    };
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../functions/hello/hello.wasm");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let load = |p: &std::path::Path| {
        let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        runtime.compile(&p.display().to_string(), &bytes).unwrap()
    };
    let (a, b) = (load(&here), load(std::path::Path::new(&other)));
    let slot = |c| {
        runtime.warm_slot(
            c,
            "hello".into(),
            None,
            128 << 20,
            wasmfn_runtime::Capabilities::default(),
            Duration::from_secs(5),
        )
    };
    let (slot_a, slot_b) = (slot(&a), slot(&b));
    rt.block_on(async {
        let time = |c, warm: Option<Arc<wasmfn_runtime::WarmSlot>>| {
            let runtime = &runtime;
            async move {
                if let Some(slot) = &warm {
                    while !slot.is_ready() {
                        tokio::task::yield_now().await;
                    }
                }
                let start = Instant::now();
                one_request(runtime, c, warm).await;
                let spent = start.elapsed().as_secs_f64() * 1e6;
                // Outside the measurement: the finished instance's teardown
                // (and a warm slot's refill), for both builds alike.
                tokio::task::yield_now().await;
                spent
            }
        };
        // The slots' first fill (their first request finds them empty), and
        // a warm-up.
        one_request(&runtime, &a, Some(slot_a.clone())).await;
        one_request(&runtime, &b, Some(slot_b.clone())).await;
        for _ in 0..500 {
            time(&a, Some(slot_a.clone())).await;
            time(&b, Some(slot_b.clone())).await;
        }
        for warm in [false, true] {
            let (mut ta, mut tb, mut diff) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..20_000 {
                let (sa, sb) = if warm {
                    (Some(slot_a.clone()), Some(slot_b.clone()))
                } else {
                    (None, None)
                };
                let (x, y) = if i % 2 == 0 {
                    let x = time(&a, sa).await;
                    (x, time(&b, sb).await)
                } else {
                    let y = time(&b, sb).await;
                    (time(&a, sa).await, y)
                };
                ta.push(x);
                tb.push(y);
                diff.push(y - x);
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "{}: hello.wasm {:.1} µs, {} {:.1} µs, paired difference (other - hello) {:+.1} µs",
                if warm {
                    "handle on a warm instance"
                } else {
                    "instantiate + handle"
                },
                median(&mut ta),
                other.to_string_lossy(),
                median(&mut tb),
                median(&mut diff),
            );
        }
    });
}

criterion_group!(benches, route_lookup, instantiate_and_handle, compare_builds);
criterion_main!(benches);
