//! `GET /hello`: the smallest function there is (the README shows it whole).

use wasmfn_sdk::Text;

fn hello() -> Text {
    Text("Hello from wasmfn!\n".into())
}

wasmfn_sdk::function! {
    /// Says hello.
    get "/" => hello,
}
