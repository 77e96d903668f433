//! The daemon's module graph (docs/architecture.md, "Module graph"): no file of `ipc/` or
//! `service/` imports from another file of its directory that imports back (directly or round
//! a longer circle), the service layer never imports from a transport, and the shared core
//! (`state.rs`) knows nothing of the runner that holds it, and the runner never reaches up into
//! the service layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn daemon_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/src")
}

/// A file's code without comments and without its unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names that follow `prefix` in `code` (`super::NAME`, `crate::ipc::NAME`).
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Which files of `dir` each file of it imports from.
fn graph(dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let root = daemon_src().join(dir);
    let files: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(files.contains("mod"), "{dir}/mod.rs");
    let resolve = |name: &str| {
        if files.contains(name) && name != "mod" {
            name.to_owned()
        } else {
            "mod".to_owned()
        }
    };
    let mut g = BTreeMap::new();
    for f in &files {
        let c = code(&root.join(format!("{f}.rs")));
        let mut to = BTreeSet::new();
        let crate_prefix = format!("crate::{dir}::");
        let mut refs = names_after(&c, &crate_prefix);
        if f == "mod" {
            refs.extend(names_after(&c, "self::"));
            // The parent names its children directly (`dispatch::handle`).
            for child in files.iter().filter(|n| *n != "mod") {
                let used = c.match_indices(&format!("{child}::")).any(|(i, _)| {
                    i == 0
                        || !c[..i]
                            .ends_with(|ch: char| ch.is_alphanumeric() || ch == '_' || ch == ':')
                });
                if used {
                    refs.push(child);
                }
            }
        } else {
            refs.extend(names_after(&c, "super::"));
        }
        for r in refs {
            let target = resolve(r);
            if &target != f {
                to.insert(target);
            }
        }
        g.insert(f.clone(), to);
    }
    g
}

/// A circle in the graph, if there is one.
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

#[test]
fn ipc_and_service_files_import_without_circles() {
    for dir in ["ipc", "service"] {
        let g = graph(dir);
        assert!(g.len() > 2, "{dir}: {g:?}");
        if let Some(c) = circle(&g) {
            panic!("{dir}/ has an import circle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn the_service_layer_knows_no_transport() {
    let root = daemon_src().join("service");
    for e in std::fs::read_dir(&root).unwrap() {
        let p = e.unwrap().path();
        let c = code(&p);
        for banned in ["crate::ipc", "varlink", "Peer", "Reply::"] {
            assert!(
                !c.contains(banned),
                "{} mentions {banned}: the service layer must not see a transport",
                p.display()
            );
        }
    }
}

#[test]
fn the_shared_core_does_not_know_the_runner() {
    // The runner holds the core (`runner::Runner::shared`); the core, and what it is made of
    // (the catalog handle, the event bus), never refer back to the runner.
    for file in ["state.rs", "events.rs"] {
        let c = code(&daemon_src().join(file));
        assert!(c.contains("pub"), "{file} read");
        for banned in ["crate::runner", "Runner"] {
            assert!(
                !c.contains(banned),
                "{file} mentions {banned}: the runner holds the shared core, not the other way round"
            );
        }
    }
    let runner = std::fs::read_to_string(daemon_src().join("runner/mod.rs")).unwrap();
    assert!(
        runner.contains("pub shared: SharedRef"),
        "the runner holds the shared core"
    );
}

#[test]
fn the_runner_sits_below_the_service_layer() {
    // The service layer queues and watches runs; the runner, and the steps it calls (sealing,
    // seal checks), never reach back up into the service layer.
    let mut files = Vec::new();
    for dir in ["runner", "immutability"] {
        for e in std::fs::read_dir(daemon_src().join(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    assert!(files.len() > 5, "{files:?}");
    for p in files {
        let c = code(&p);
        assert!(
            !c.contains("crate::service"),
            "{} names crate::service: the runner is below the service layer",
            p.display()
        );
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    g.insert("c".to_owned(), BTreeSet::new());
    assert!(circle(&g).is_some());
    g.insert("b".to_owned(), BTreeSet::new());
    assert!(circle(&g).is_none());
}
