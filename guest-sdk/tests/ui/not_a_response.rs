// A return type that is not a response: the error names the handler.
fn hello() -> u32 {
    42
}

wasmfn_sdk::function! {
    get "/" => hello,
}

fn main() {}
