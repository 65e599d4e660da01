//! What a document may ask for, checked before any other check.
//!
//! Its size once its fragments are expanded: a few hundred bytes of
//! fragments that each spread the next one twice expand exponentially, and
//! async-graphql's recursion-depth check and validation passes walk every
//! expanded path before the complexity limit can answer (a 2^22 expansion
//! took 1.3 s). This counts with memoised fragments, in time linear in the
//! document, and refuses first.
//!
//! At most one field that checks a password per operation: aliases would
//! otherwise turn one request into hundreds of guesses (and hundreds of
//! argon2 hashes) that no per-request limit sees.
//!
//! No control characters but tab and line breaks in any string, in the
//! document or its variables: PostgreSQL cannot store NUL (a statement with
//! one fails), and the others have no place in names, emails or keys.
//!
//! And queries and mutations sent over a WebSocket take a slot of
//! `MAX_REQUESTS_IN_FLIGHT`, as HTTP requests do in the router, which never
//! sees them.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, Response, ServerError, ServerResult, Value};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Field selections a document may expand to (the complexity limit then
/// judges what the fields cost).
pub const MAX_EXPANDED_SELECTIONS: u64 = 10_000;

/// The root fields that check or set a password.
const PASSWORD_FIELDS: [&str; 2] = ["login", "register"];

pub struct ExpansionLimit;

impl ExtensionFactory for ExpansionLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ExpansionLimit)
    }
}

#[async_trait::async_trait]
impl Extension for ExpansionLimit {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let control_in_variables = request.variables.values().any(has_control);
        // parsed here once: the request keeps the document for execution
        let document = request.parsed_query()?;
        if expanded_selections(document) > MAX_EXPANDED_SELECTIONS {
            return Err(ServerError::new(
                format!(
                    "Query is too large: over {MAX_EXPANDED_SELECTIONS} fields once its fragments are expanded."
                ),
                None,
            ));
        }
        if password_fields(document) > 1 {
            return Err(ServerError::new(
                "An operation may sign in or register once: at most one login or register field.",
                None,
            ));
        }
        if control_in_variables || has_control_characters(document) {
            return Err(ServerError::new(
                "A string may not hold control characters (such as NUL) other than tab and line breaks.",
                None,
            ));
        }
        next.run(ctx, request).await
    }
}

/// Whether any string argument of the document holds a control character
/// other than tab and line breaks.
fn has_control_characters(document: &ExecutableDocument) -> bool {
    let mut sets: Vec<&SelectionSet> = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(
            document
                .fragments
                .values()
                .map(|f| &f.node.selection_set.node),
        )
        .collect();
    while let Some(set) = sets.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    // variables stand in as null: they are checked apart
                    let has_control = field.node.arguments.iter().any(|(_, value)| {
                        value
                            .node
                            .clone()
                            .into_const_with(|_| Ok::<_, std::convert::Infallible>(Value::Null))
                            .is_ok_and(|value| has_control(&value))
                    });
                    if has_control {
                        return true;
                    }
                    sets.push(&field.node.selection_set.node);
                }
                Selection::InlineFragment(inline) => sets.push(&inline.node.selection_set.node),
                // every fragment's own selections are walked above
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    false
}

fn is_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

fn has_control(value: &Value) -> bool {
    match value {
        Value::String(s) => s.chars().any(is_control),
        Value::List(items) => items.iter().any(has_control),
        Value::Object(fields) => fields.values().any(has_control),
        _ => false,
    }
}

/// The in-flight slots, in a WebSocket connection's data.
#[derive(Clone)]
pub struct SocketInFlight(pub Arc<Semaphore>);

pub struct InFlightOverSockets;

impl ExtensionFactory for InFlightOverSockets {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(InFlightOverSockets)
    }
}

#[async_trait::async_trait]
impl Extension for InFlightOverSockets {
    /// Queries and mutations only: a subscription's stream holds a slot of
    /// its connection's own (`SubscriptionSlots`).
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let Some(SocketInFlight(slots)) = ctx.data_opt::<SocketInFlight>() else {
            return next.run(ctx, operation_name).await;
        };
        match slots.try_acquire() {
            Ok(_slot) => next.run(ctx, operation_name).await,
            // as HTTP's shedding: not a log line per refusal
            Err(_) => {
                Response::from_errors(vec![ApiError::OVERLOADED.into_unlogged_server_error()])
            }
        }
    }
}

fn expanded_selections(document: &ExecutableDocument) -> u64 {
    let mut fragments = HashMap::new();
    document
        .operations
        .iter()
        .map(|(_, op)| {
            size(
                &op.node.selection_set.node,
                document,
                &mut fragments,
                &mut Vec::new(),
            )
        })
        .fold(0, u64::saturating_add)
}

/// The most password fields any one operation selects at its root, through
/// fragments and aliases alike.
fn password_fields(document: &ExecutableDocument) -> usize {
    document
        .operations
        .iter()
        .map(|(_, op)| root_password_fields(&op.node.selection_set.node, document, &mut Vec::new()))
        .max()
        .unwrap_or(0)
}

fn root_password_fields<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    visiting: &mut Vec<&'a str>,
) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(PASSWORD_FIELDS.contains(&field.node.name.node.as_str()))
            }
            Selection::InlineFragment(inline) => {
                root_password_fields(&inline.node.selection_set.node, document, visiting)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get(&spread.node.fragment_name.node) {
                    // unknown and cyclic fragments: validation names them
                    Some(_) if visiting.contains(&name) => 0,
                    None => 0,
                    Some(fragment) => {
                        visiting.push(name);
                        let n = root_password_fields(
                            &fragment.node.selection_set.node,
                            document,
                            visiting,
                        );
                        visiting.pop();
                        n
                    }
                }
            }
        })
        .fold(0, usize::saturating_add)
}

fn size<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    fragments: &mut HashMap<&'a str, u64>,
    visiting: &mut Vec<&'a str>,
) -> u64 {
    set.items.iter().fold(0, |total, item| {
        let n = match &item.node {
            Selection::Field(field) => 1u64.saturating_add(size(
                &field.node.selection_set.node,
                document,
                fragments,
                visiting,
            )),
            Selection::InlineFragment(inline) => size(
                &inline.node.selection_set.node,
                document,
                fragments,
                visiting,
            ),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match (
                    fragments.get(name),
                    document.fragments.get(&spread.node.fragment_name.node),
                ) {
                    (Some(known), _) => *known,
                    // unknown and cyclic fragments: validation names them
                    (None, None) => 0,
                    (None, Some(_)) if visiting.contains(&name) => 0,
                    (None, Some(fragment)) => {
                        visiting.push(name);
                        let n = size(
                            &fragment.node.selection_set.node,
                            document,
                            fragments,
                            visiting,
                        );
                        visiting.pop();
                        fragments.insert(name, n);
                        n
                    }
                }
            }
        };
        total.saturating_add(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(query: &str) -> u64 {
        expanded_selections(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn counts_fields_through_fragments() {
        assert_eq!(expanded("{ a b { c d } }"), 4);
        assert_eq!(expanded("{ ...F ...F } fragment F on Q { a b }"), 4);
        assert_eq!(expanded("{ ... on Q { a } }"), 1);
    }

    #[test]
    fn a_fragment_bomb_is_counted_without_expanding_it() {
        // each level spreads the next twice: 2^40 leaves
        let mut query = String::from("{ ...F0 }");
        for level in 0..40 {
            query.push_str(&format!(
                " fragment F{level} on Q {{ ...F{} ...F{} }}",
                level + 1,
                level + 1
            ));
        }
        query.push_str(" fragment F40 on Q { a }");
        assert_eq!(expanded(&query), 1 << 40);
    }

    #[test]
    fn password_fields_are_counted_through_aliases_and_fragments() {
        let count =
            |query: &str| password_fields(&async_graphql::parser::parse_query(query).unwrap());
        assert_eq!(count("mutation { login(input: {}) { token } }"), 1);
        assert_eq!(
            count("mutation { a: login { token } b: login { token } }"),
            2
        );
        assert_eq!(count("mutation { login { token } register { token } }"), 2);
        assert_eq!(
            count(
                "mutation { ...L ... on Mutation { login { token } } } fragment L on Mutation { login { token } }"
            ),
            2
        );
        // one per operation: only one of them runs
        assert_eq!(
            count("mutation A { login { token } } mutation B { login { token } }"),
            1
        );
        // a field named login below the root is no sign-in
        assert_eq!(count("{ me { login } } "), 0);
        assert_eq!(
            count("mutation { ...L } fragment L on Mutation { ...L login { t } }"),
            1
        );
    }

    #[test]
    fn control_characters_are_found_in_literals_fragments_and_variables() {
        let check = |query: &str, variables: serde_json::Value| {
            has_control_characters(&async_graphql::parser::parse_query(query).unwrap())
                || async_graphql::Variables::from_json(variables)
                    .values()
                    .any(has_control)
        };
        let none = serde_json::json!({});
        assert!(!check(
            "mutation { a(name: \"Ann\\tB\\nC\\r\") }",
            none.clone()
        ));
        assert!(check("mutation { a(name: \"A\\u0000\") }", none.clone()));
        assert!(check(
            "{ ...F } fragment F on Q { a(x: [{ y: \"\\u001b[31m\" }]) }",
            none.clone()
        ));
        assert!(check("{ a { b(x: \"\\u007f\") } }", none.clone()));
        assert!(check(
            "mutation($i: I) { a(input: $i) }",
            serde_json::json!({ "i": { "names": ["ok", "nul\u{0}"] } })
        ));
        assert!(!check(
            "mutation($i: I) { a(input: $i) }",
            serde_json::json!({ "i": { "name": "Zoë 🍕" } })
        ));
    }

    #[test]
    fn cycles_and_unknown_fragments_are_left_to_validation() {
        assert_eq!(
            expanded("{ ...A } fragment A on Q { a ...B } fragment B on Q { b ...A }"),
            2
        );
        assert_eq!(expanded("{ x ...Missing }"), 1);
    }
}
