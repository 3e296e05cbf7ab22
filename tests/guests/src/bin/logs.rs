//! Writes to its stdout and stderr as careless guests do: one whole line
//! on stdout; on stderr one line in pieces, each through a handle of its
//! own (`get-stderr()` anew for every write), then a line left without a
//! newline. Answers `logged`.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

/// What goes to stdout, one line.
const STDOUT_LINE: &str = "hello from the logs guest\n";
/// The pieces written to stderr: one line, then one without its newline.
const STDERR_PIECES: [&str; 5] = ["start a print ", "1", "2", "3\n", "left without a newline"];

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        wasi::cli::stdout::get_stdout()
            .blocking_write_and_flush(STDOUT_LINE.as_bytes())
            .expect("write to stdout");
        for piece in STDERR_PIECES {
            // A handle of its own for each piece, dropped after it.
            wasi::cli::stderr::get_stderr()
                .blocking_write_and_flush(piece.as_bytes())
                .expect("write to stderr");
        }
        respond(out, 200, "text/plain", b"logged\n");
    }
}

fn main() {}
