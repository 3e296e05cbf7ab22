//! The benchmark baseline: the same hello body served by plain axum, no
//! WebAssembly. The physical limit of the HTTP stack on this machine.
//!
//! `cargo run --release -p wasmfn --example native_hello -- 127.0.0.1:8081`

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into());
    let app = Router::new().route("/hello", get(|| async { "Hello from wasmfn!\n" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("native hello listening on http://{}", listener.local_addr()?);
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
