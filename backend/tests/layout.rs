//! The backend's modules depend on each other in one direction only: no
//! group of modules reaches back into itself (issue 15: "no cycles between
//! domains"; the HTTP layer sits on top and no domain module imports it).
//! Read from the sources: each top-level module (a file, or a folder such
//! as `http/`, `orders/` and `store/`) and the `crate::` paths its code (doc
//! comments included) names, tests left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module -> the modules its (non-test) code names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if path.is_dir() {
            for f in walk(&path) {
                files.push((name.clone(), f));
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name != "main" && name != "lib" {
            files.push((name, path));
        }
    }
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).expect("source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut named = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(list) = rest.strip_prefix('{') {
                // use crate::{a, b::c}
                let inner = &list[..list.find('}').unwrap_or(0)];
                named.extend(inner.split(',').map(|p| p.trim().split("::").next().unwrap_or_default().to_string()));
            } else {
                named.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
        for n in named {
            if modules.contains(&n) && &n != module {
                deps.get_mut(module).expect("module").insert(n);
            }
        }
    }
    deps
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Groups of two or more modules that reach each other (Tarjan).
fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        deps: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.deps[v] {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("low");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("low");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                t.out.push(group);
            }
        }
    }
    let mut t = T { deps, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), next: 0, out: Vec::new() };
    for v in deps.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v.as_str());
        }
    }
    t.out
}

#[test]
fn no_group_of_backend_modules_reaches_back_into_itself() {
    let deps = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(deps["http"].contains("orders") && deps["orders"].contains("store"), "the graph was read: {deps:?}");
    // one folder per domain (issue 15), beside the shared plumbing
    for module in [
        "accounts", "registration", "registrar", "orders", "payments", "stations", "documents", "mail", "store", "http",
        "config", "error", "time", "sealed", "messages", "metrics", "jobs", "demo", "install", "backup", "failpoint",
    ] {
        assert!(deps.contains_key(module), "no module {module}: {deps:?}");
    }
    let found = cycles(&deps);
    assert!(found.is_empty(), "modules that reach back into themselves: {found:?}");
    for (module, uses) in &deps {
        assert!(module == "http" || !uses.contains("http"), "{module} imports the HTTP layer");
    }
}

#[test]
fn the_check_finds_a_cycle_when_there_is_one() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("accounts", "registration"), ("registration", "payments"), ("payments", "accounts"), ("orders", "store")] {
        deps.entry(a.into()).or_default().insert(b.into());
        deps.entry(b.into()).or_default();
    }
    assert_eq!(cycles(&deps), vec![vec!["accounts".to_string(), "payments".into(), "registration".into()]]);
}
