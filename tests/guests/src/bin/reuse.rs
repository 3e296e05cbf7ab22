//! Keeps state in globals between the requests its instance serves, as a
//! guest whose instances are reused would: how many it served, memory it
//! holds on to, and (with `?keep=1`) the request resource itself.
//!
//! - `?trap=1` panics (a trap); `?spin=1` computes until the deadline;
//!   `?grow=N` adds N MiB to what the instance holds (a refused growth
//!   aborts it: out of memory).
//! - The answer says how many requests the instance served, this one
//!   included, its request id, the MiB it holds, whether it sees the
//!   `x-secret` header, and whether it still held an earlier request.
use std::cell::RefCell;

use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

thread_local! {
    static SERVED: RefCell<u32> = const { RefCell::new(0) };
    static HELD: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static KEPT: RefCell<Option<IncomingRequest>> = const { RefCell::new(None) };
}

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let n = SERVED.with(|s| {
            *s.borrow_mut() += 1;
            *s.borrow()
        });
        if query(&req, "trap").is_some() {
            panic!("trap asked for");
        }
        if query(&req, "spin").is_some() {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let grow: usize = query(&req, "grow").and_then(|v| v.parse().ok()).unwrap_or(0);
        HELD.with(|h| {
            for _ in 0..grow {
                h.borrow_mut().push(vec![1u8; 1 << 20]);
            }
        });
        let held_mib = HELD.with(|h| h.borrow().len());
        let id = header(&req, "x-request-id").unwrap_or_default();
        let saw_secret = header(&req, "x-secret").is_some();
        let had_request = KEPT.with(|k| k.borrow().is_some());
        let body = format!(
            "{{\"served\":{n},\"request_id\":{},\"held_mib\":{held_mib},\"saw_secret\":{saw_secret},\"had_request\":{had_request}}}",
            json_str(&id)
        );
        if query(&req, "keep").is_some() {
            KEPT.with(|k| *k.borrow_mut() = Some(req));
        }
        respond(out, 200, "application/json", body.as_bytes());
    }
}

fn main() {}
