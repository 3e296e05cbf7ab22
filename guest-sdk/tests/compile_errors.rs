//! Mistakes in a function declaration are compile errors that point at
//! the author's code and say what is expected.

#[test]
fn mistakes_point_at_the_handler() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
