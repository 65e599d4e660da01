//! Which requests check their caller's token in their own statement. Most
//! requests have the caller's account read first (`auth::accounts`), so
//! that every resolver sees a confirmed viewer. Two kinds of request make
//! one statement that can check the token itself, against the account it
//! reads or writes anyway: placing orders (the placement statement) and
//! reading `me` (the profile statement). Those skip the read before, and
//! so make one statement instead of two.

use async_graphql::Request;
use async_graphql::parser::types::{OperationType, Selection};

/// Whether the operation `request` runs is a mutation of `placeOrder`
/// fields and nothing else at its root, or a query of `me` fields and
/// nothing else. Anything else at the root (another field, a fragment, a
/// directive) needs the caller confirmed first, and so does a document that
/// does not parse (it is then refused as before). The document parsed here
/// is the one the schema runs: it is parsed once.
pub fn checks_its_own_token(request: &mut Request) -> bool {
    // None unless the client names one: no allocation
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return false;
    };
    let Some(operation) = super::operation(document, operation_name.as_deref()) else {
        return false;
    };
    let field = match operation.ty {
        OperationType::Mutation => "placeOrder",
        OperationType::Query => "me",
        OperationType::Subscription => return false,
    };
    let root = &operation.selection_set.node.items;
    operation.directives.is_empty()
        && !root.is_empty()
        && root.iter().all(|selection| match &selection.node {
            Selection::Field(f) => f.node.name.node == field && f.node.directives.is_empty(),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(query: &str, operation: Option<&str>) -> bool {
        let mut request = Request::new(query);
        if let Some(operation) = operation {
            request = request.operation_name(operation);
        }
        checks_its_own_token(&mut request)
    }

    #[test]
    fn only_place_order_or_me_alone_at_the_root_leave_the_token_to_their_statement() {
        let place = "placeOrder(input: {items: []}) { id }";
        for (query, operation, expected) in [
            (format!("mutation {{ {place} }}"), None, true),
            (
                format!("mutation M {{ a: {place} b: {place} }}"),
                None,
                true,
            ),
            (
                format!("mutation A {{ {place} }} query B {{ me {{ id }} }}"),
                Some("A"),
                true,
            ),
            (
                format!("mutation A {{ {place} }} query B {{ me {{ id }} }}"),
                Some("B"),
                true,
            ),
            (
                format!("mutation A {{ {place} }} query B {{ me {{ id }} __typename }}"),
                Some("B"),
                false,
            ),
            (
                format!("mutation A {{ {place} }} mutation B {{ {place} }}"),
                None,
                false,
            ),
            (format!("mutation A {{ {place} }}"), Some("C"), false),
            (format!("mutation {{ {place} __typename }}"), None, false),
            (
                format!("mutation {{ {place} cancelOrder(id: 1) {{ id }} }}"),
                None,
                false,
            ),
            (
                format!("mutation {{ ... on Mutation {{ {place} }} }}"),
                None,
                false,
            ),
            (
                format!("mutation {{ ...F }} fragment F on Mutation {{ {place} }}"),
                None,
                false,
            ),
            (
                "mutation { placeOrder(input: {items: []}) @skip(if: true) { id } }".to_owned(),
                None,
                false,
            ),
            (format!("mutation @deprecated {{ {place} }}"), None, false),
            (format!("{{ {place} }}"), None, false),
            ("mutation { placeOrder(".to_owned(), None, false),
            (String::new(), None, false),
            // `me`, with whatever inside it
            (
                "{ me { id mostOrderedItems { id } } }".to_owned(),
                None,
                true,
            ),
            (
                "query { a: me { id } b: me { name } }".to_owned(),
                None,
                true,
            ),
            (
                "{ me { ...F } } fragment F on User { id }".to_owned(),
                None,
                true,
            ),
            ("{ me { id } cart { total } }".to_owned(), None, false),
            (
                "{ me { id } products { totalCount } }".to_owned(),
                None,
                false,
            ),
            ("{ me @include(if: true) { id } }".to_owned(), None, false),
            ("{ ... on Query { me { id } } }".to_owned(), None, false),
            ("mutation { me { id } }".to_owned(), None, false),
            ("subscription { me { id } }".to_owned(), None, false),
        ] {
            assert_eq!(checks(&query, operation), expected, "{query} {operation:?}");
        }
    }
}
