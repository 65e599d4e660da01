//! The crate's modules import one another in layers, never in a circle:
//! config, error, money and coalesce import nothing of the crate; auth and
//! db stand on them; domain on those; state, graphql and http above; startup
//! puts it all together. A circle is where a newcomer's change to one room
//! breaks another for no reason they can see. This test reads the `use`
//! lines (and paths) of every module outside its tests and fails on the
//! first circle, between the crate's top modules or between the modules of
//! one folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path in the crate (`["auth", "tokens"]`), from its file.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if path
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        path.pop();
    }
    path
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The code of a file as the crate builds it: without its comments and its
/// test module.
fn code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let test_module = lines
            .peek()
            .is_some_and(|next| next.trim_start().starts_with("mod "));
        if trimmed.starts_with("#[cfg(test)]") && test_module {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Every module path `code` names, as `crate::a::b` or inside a
/// `use crate::{a::b, c}` group, as its segments; `super::` resolved from
/// `module`.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let segments = |path: &str| -> Vec<String> {
        path.split("::")
            .map(|s| {
                s.trim()
                    .trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
                    .to_owned()
            })
            .take_while(|s| !s.is_empty() && s.chars().next().is_some_and(char::is_lowercase))
            .filter(|s| s != "self")
            .collect()
    };
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            // not the tail of a longer path (`foo_super::`)
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let mut path = base.clone();
                    path.extend(segments(item));
                    found.push(path);
                }
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                let mut path = base.clone();
                path.extend(segments(&rest[..end]));
                found.push(path);
            }
        }
    }
    found
}

fn parent(module: &[String]) -> Vec<String> {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// The modules of the crate and whom each imports, at one level: the top
/// modules, or the modules directly inside `folder`.
fn graph(
    modules: &BTreeMap<Vec<String>, Vec<Vec<String>>>,
    folder: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let depth = folder.len();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let known: BTreeSet<&String> = modules
        .keys()
        .filter(|m| m.len() > depth && m.starts_with(folder))
        .map(|m| &m[depth])
        .collect();
    for (module, references) in modules {
        if module.len() <= depth || !module.starts_with(folder) {
            continue;
        }
        let from = &module[depth];
        let edges = graph.entry(from.clone()).or_default();
        for path in references {
            if path.len() > depth
                && path.starts_with(folder)
                && &path[depth] != from
                && known.contains(&path[depth])
            {
                edges.insert(path[depth].clone());
            }
        }
    }
    graph
}

/// A circle of `graph`, as the modules along it, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &String,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.clone());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(graph, next, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

fn crate_modules() -> BTreeMap<Vec<String>, Vec<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .iter()
        // the binary is a crate of its own, above this one
        .filter(|file| !file.ends_with("main.rs"))
        .map(|file| {
            let module = module_of(&src, file);
            let text = std::fs::read_to_string(file).unwrap();
            let references = references(&module, &code(&text));
            (module, references)
        })
        .collect()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let modules = crate_modules();
    let folders: BTreeSet<Vec<String>> = modules.keys().map(|m| parent(m)).collect();
    for folder in folders {
        let graph = graph(&modules, &folder);
        assert_eq!(
            circle(&graph),
            None,
            "a circle of imports in crate::{}: {graph:#?}",
            folder.join("::")
        );
    }
}

#[test]
fn the_reader_of_imports_sees_what_the_compiler_sees() {
    let module = vec!["domain".to_owned(), "orders".to_owned()];
    let code = code(
        "use crate::auth::{ClientAddr, Viewer};\n\
         // use crate::http;\n\
         use crate::{config, error::ApiError};\n\
         use super::pricing::{self, PriceRow};\n\
         let x = crate::db::any_of(a, b);\n\
         #[cfg(test)]\n\
         mod tests {\n\
         use crate::startup;\n",
    );
    let mut found = references(&module, &code);
    found.sort();
    let expected: Vec<Vec<&str>> = vec![
        vec!["auth"],
        vec!["config"],
        vec!["db", "any_of"],
        vec!["domain", "pricing"],
        vec!["error"],
    ];
    assert_eq!(found, expected);

    let two = |a: &str, b: &str| (vec![a.to_owned()], vec![vec![b.to_owned(), "x".to_owned()]]);
    let looped: BTreeMap<_, _> = [two("a", "b"), two("b", "c"), two("c", "a")].into();
    assert_eq!(
        circle(&graph(&looped, &[])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let layered: BTreeMap<_, _> = [two("a", "b"), two("b", "c"), two("a", "c")].into();
    assert_eq!(circle(&graph(&layered, &[])), None);
}
