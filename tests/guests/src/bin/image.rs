//! Starts from a large memory image (a 1.5 MiB static of sevens, more than
//! the host maps copy-on-write by default) and writes to every other page
//! of it on each request: each instance must start from the image as built,
//! whichever way the host initialises its memory. Answers whether it did.
use std::sync::atomic::{AtomicU32, Ordering};

use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

/// 1.5 MiB of initialised data: an active data segment, not zeroed memory.
const WORDS: usize = 384 * 1024;
static IMAGE: [AtomicU32; WORDS] = [const { AtomicU32::new(7) }; WORDS];
/// Words per 8 KiB: writes at this stride dirty every other 4 KiB page,
/// in far more separate runs than the host keeps track of.
const STRIDE: usize = 2048;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        let pristine = (0..WORDS)
            .step_by(STRIDE / 2)
            .all(|i| IMAGE[i].load(Ordering::Relaxed) == 7);
        for i in (0..WORDS).step_by(STRIDE) {
            IMAGE[i].store(8, Ordering::Relaxed);
        }
        let written = (0..WORDS)
            .step_by(STRIDE)
            .all(|i| IMAGE[i].load(Ordering::Relaxed) == 8);
        let body = format!("{{\"pristine\":{pristine},\"written\":{written}}}");
        respond(out, 200, "application/json", body.as_bytes());
    }
}

fn main() {}
