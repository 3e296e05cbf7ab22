// A handler argument that is not an extractor: the error names the handler.
use wasmfn_sdk::Text;

fn hello(name: String) -> Text {
    Text(name)
}

wasmfn_sdk::function! {
    get "/" => hello,
}

fn main() {}
