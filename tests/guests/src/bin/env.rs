//! Reports what the sandbox grants: environment, arguments, preopened directories, cwd.
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasmfn_test_guests::*;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let _ = req;
        let env: Vec<String> = wasi::cli::environment::get_environment()
            .iter()
            .map(|(k, v)| format!("[{},{}]", json_str(k), json_str(v)))
            .collect();
        let args: Vec<String> = wasi::cli::environment::get_arguments()
            .iter()
            .map(|a| json_str(a))
            .collect();
        let preopens: Vec<String> = wasi::filesystem::preopens::get_directories()
            .iter()
            .map(|(_, p)| json_str(p))
            .collect();
        let cwd = wasi::cli::environment::initial_cwd()
            .map(|c| json_str(&c))
            .unwrap_or_else(|| "null".into());
        let std_env = std::env::vars().count();
        let body = format!(
            "{{\"env\":[{}],\"args\":[{}],\"preopens\":[{}],\"cwd\":{cwd},\"std_env_count\":{std_env}}}",
            env.join(","),
            args.join(","),
            preopens.join(",")
        );
        println!("env probe ran");
        eprintln!("env probe stderr line");
        respond(out, 200, "application/json", body.as_bytes());
    }
}

fn main() {}
