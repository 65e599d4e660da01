//! What a document may ask for, checked before any other check.
//!
//! Its size once its fragments are expanded: a few hundred bytes of
//! fragments that each spread the next one twice expand exponentially, and
//! async-graphql's recursion-depth check and validation passes walk every
//! expanded path before the complexity limit can answer (a 2^22 expansion
//! took 1.3 s). This counts with memoised fragments, in time linear in the
//! document, and refuses first.
//!
//! Its depth over Tally's own types ([`MAX_DEPTH`]). Introspection is
//! bounded apart, as graphql-js bounds it (`MaxIntrospectionDepthRule`): the
//! standard introspection query that GraphiQL, code generators and IDEs send
//! nests `ofType` nine deep, which is cheap (one type per level), while what
//! multiplies an answer is nesting the lists that fan out over the schema
//! (`fields`, `interfaces`, `possibleTypes`, `inputFields`), so those may
//! nest at most twice, and an operation may read the schema at most
//! [`MAX_SCHEMA_READS`] times. (The parser's own bound on nesting, 32
//! selection sets, still holds for every document.)
//!
//! At most one field that checks a password per operation: aliases would
//! otherwise turn one request into hundreds of guesses (and hundreds of
//! argon2 hashes) that no per-request limit sees.
//!
//! No control characters but tab and line breaks in any string, in the
//! document or its variables: PostgreSQL cannot store NUL (a statement with
//! one fails), and the others have no place in names, emails or keys.
//!
//! (What operations over a WebSocket pay is in `sockets`; documents too
//! large to parse in a blink, in `documents`.)

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult, Value};

use super::MAX_DEPTH;

/// Field selections a document may expand to (the complexity limit then
/// judges what the fields cost).
pub const MAX_EXPANDED_SELECTIONS: u64 = 10_000;

/// The root fields that check or set a password.
const PASSWORD_FIELDS: [&str; 2] = ["login", "register"];

/// The root fields that read the schema; their selections are bounded by
/// [`MAX_INTROSPECTION_LISTS`], not by [`MAX_DEPTH`].
pub(crate) const SCHEMA_FIELDS: [&str; 2] = ["__schema", "__type"];

/// Times one operation may read the schema (`__schema` or `__type`): the
/// standard introspection query reads it once; a few `__type` reads fit.
pub const MAX_SCHEMA_READS: usize = 5;

/// The introspection fields whose lists fan out over the schema, and how
/// deep they may nest (graphql-js refuses three).
const LIST_FIELDS: [&str; 4] = ["fields", "interfaces", "possibleTypes", "inputFields"];
pub const MAX_INTROSPECTION_LISTS: usize = 2;

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
        if depth(document) > MAX_DEPTH {
            // async-graphql's words, which clients already know
            return Err(ServerError::new("Query is nested too deep.", None));
        }
        let roots = root_fields(document);
        if most(&roots, &PASSWORD_FIELDS) > 1 {
            return Err(ServerError::new(
                "An operation may sign in or register once: at most one login or register field.",
                None,
            ));
        }
        if most(&roots, &SCHEMA_FIELDS) > MAX_SCHEMA_READS {
            return Err(ServerError::new(
                format!(
                    "An operation may read the schema at most {MAX_SCHEMA_READS} times (__schema or __type fields)."
                ),
                None,
            ));
        }
        if introspection_lists(document, &roots) > MAX_INTROSPECTION_LISTS {
            return Err(ServerError::new(
                format!(
                    "Introspection is nested too deep: fields, interfaces, possibleTypes and inputFields may nest at most {MAX_INTROSPECTION_LISTS} deep."
                ),
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

fn expanded_selections(document: &ExecutableDocument) -> u64 {
    let mut fold = Fold::new(
        document,
        &|field, inner| 1u64.saturating_add(inner(&field.selection_set.node)),
        u64::saturating_add,
    );
    document
        .operations
        .iter()
        .map(|(_, op)| fold.set(&op.node.selection_set.node))
        .fold(0, u64::saturating_add)
}

/// The most root fields named `names` that any one operation selects.
fn most(roots: &[Vec<&Field>], names: &[&str]) -> usize {
    let picked = |fields: &Vec<&Field>| {
        let named = fields
            .iter()
            .filter(|f| names.contains(&f.name.node.as_str()));
        named.count()
    };
    roots.iter().map(picked).max().unwrap_or(0)
}

/// Each operation's root fields.
fn root_fields(document: &ExecutableDocument) -> Vec<Vec<&Field>> {
    document
        .operations
        .iter()
        .map(|(_, op)| root_fields_of(&op.node.selection_set.node, document))
        .collect()
}

/// The root fields of an operation's selections, through fragments and
/// inline fragments, aliases and all. (Walked without memoising: the
/// expansion limit has already bounded what the walk can reach.)
fn root_fields_of<'a>(set: &'a SelectionSet, document: &'a ExecutableDocument) -> Vec<&'a Field> {
    fn collect<'a>(
        set: &'a SelectionSet,
        document: &'a ExecutableDocument,
        visiting: &mut Vec<&'a str>,
        fields: &mut Vec<&'a Field>,
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => fields.push(&field.node),
                Selection::InlineFragment(inline) => {
                    collect(&inline.node.selection_set.node, document, visiting, fields);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    // unknown and cyclic fragments: validation names them
                    if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                        && !visiting.contains(&name)
                    {
                        visiting.push(name);
                        collect(
                            &fragment.node.selection_set.node,
                            document,
                            visiting,
                            fields,
                        );
                        visiting.pop();
                    }
                }
            }
        }
    }
    let mut fields = Vec::new();
    collect(set, document, &mut Vec::new(), &mut fields);
    fields
}

/// How deep a document nests Tally's own fields: a schema read counts as
/// one field, whatever it selects.
fn depth(document: &ExecutableDocument) -> usize {
    let mut fold = Fold::new(
        document,
        &|field, inner| match SCHEMA_FIELDS.contains(&field.name.node.as_str()) {
            true => 1,
            false => 1 + inner(&field.selection_set.node),
        },
        usize::max,
    );
    document
        .operations
        .iter()
        .map(|(_, op)| fold.set(&op.node.selection_set.node))
        .max()
        .unwrap_or(0)
}

/// The most introspection lists any schema read nests.
fn introspection_lists(document: &ExecutableDocument, roots: &[Vec<&Field>]) -> usize {
    let mut fold = Fold::new(
        document,
        &|field, inner| {
            usize::from(LIST_FIELDS.contains(&field.name.node.as_str()))
                + inner(&field.selection_set.node)
        },
        usize::max,
    );
    roots
        .iter()
        .flatten()
        .filter(|field| SCHEMA_FIELDS.contains(&field.name.node.as_str()))
        .map(|field| fold.set(&field.selection_set.node))
        .max()
        .unwrap_or(0)
}

/// A fold over selection sets through their fragments, each fragment folded
/// once (what a fragment comes to does not depend on where it is spread), so
/// a fragment bomb costs its text, not its expansion. `field` says what a
/// field comes to, given a way to fold its own selections; siblings combine
/// with `join`, from `T::default()`, which is also what unknown and cyclic
/// fragments come to: validation names them.
pub(super) struct Fold<'a, 'f, T, F> {
    document: &'a ExecutableDocument,
    field: &'f F,
    join: fn(T, T) -> T,
    memo: HashMap<&'a str, T>,
    visiting: Vec<&'a str>,
}

impl<'a, 'f, T, F> Fold<'a, 'f, T, F>
where
    T: Copy + Default,
    F: Fn(&'a Field, &mut dyn FnMut(&'a SelectionSet) -> T) -> T,
{
    pub(super) fn new(document: &'a ExecutableDocument, field: &'f F, join: fn(T, T) -> T) -> Self {
        Self {
            document,
            field,
            join,
            memo: HashMap::new(),
            visiting: Vec::new(),
        }
    }

    pub(super) fn set(&mut self, set: &'a SelectionSet) -> T {
        set.items.iter().fold(T::default(), |total, item| {
            let value = match &item.node {
                Selection::Field(field) => {
                    let value_of = self.field;
                    value_of(&field.node, &mut |inner| self.set(inner))
                }
                Selection::InlineFragment(inline) => self.set(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())
                }
            };
            (self.join)(total, value)
        })
    }

    fn fragment(&mut self, name: &'a str) -> T {
        if let Some(known) = self.memo.get(name) {
            return *known;
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return T::default();
        };
        if self.visiting.contains(&name) {
            return T::default();
        }
        self.visiting.push(name);
        let value = self.set(&fragment.node.selection_set.node);
        self.visiting.pop();
        self.memo.insert(name, value);
        value
    }
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

    fn parsed(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).unwrap()
    }

    #[test]
    fn depth_counts_tally_fields_and_a_schema_read_as_one() {
        assert_eq!(depth(&parsed("{ a { b { c } } d }")), 3);
        assert_eq!(
            depth(&parsed("{ a { ...F } } fragment F on A { b { c { d } } }")),
            4
        );
        let of_types = |n: usize| {
            format!(
                "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
                "ofType { ".repeat(n),
                " }".repeat(n)
            )
        };
        assert_eq!(depth(&parsed(&of_types(20))), 1);
        assert_eq!(
            depth(&parsed(
                "{ me { id } __type(name: \"Q\") { fields { name } } }"
            )),
            2
        );
    }

    #[test]
    fn introspection_lists_count_only_the_fields_that_fan_out() {
        let lists = |query: &str| {
            let document = parsed(query);
            let roots = root_fields(&document);
            introspection_lists(&document, &roots)
        };
        assert_eq!(
            lists("{ __schema { types { fields { type { ofType { name } } } } } }"),
            1
        );
        assert_eq!(
            lists(
                "{ __schema { types { ...T } } } fragment T on __Type { fields { type { fields { name } } } }"
            ),
            2
        );
        assert_eq!(
            lists(
                "{ __type(name: \"Q\") { fields { type { fields { type { interfaces { name } } } } } } }"
            ),
            3
        );
        assert_eq!(
            lists(
                "{ ...R } fragment R on Query { __schema { types { possibleTypes { inputFields { name } } } } }"
            ),
            2
        );
        // Tally's own fields never count, whatever their names
        assert_eq!(lists("{ a { fields { fields { fields { x } } } } }"), 0);
    }

    #[test]
    fn password_fields_are_counted_through_aliases_and_fragments() {
        let count = |query: &str| most(&root_fields(&parsed(query)), &PASSWORD_FIELDS);
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
