/// `schema.graphql` at the repository root is what the server serves.
#[test]
fn schema_graphql_matches_the_served_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let checked_in = std::fs::read_to_string(path).expect("schema.graphql at the repository root");
    assert!(
        checked_in == tally::graphql::sdl(),
        "schema.graphql is out of date: regenerate it with \
         `cargo run -p tally -- export-schema > schema.graphql`"
    );
}
