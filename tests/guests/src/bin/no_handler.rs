//! A valid component that is a command, not an HTTP handler: the host must
//! refuse it with a clear message.
fn main() {
    println!("I only run from a command line");
}
