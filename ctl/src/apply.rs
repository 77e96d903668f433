//! `bmsctl apply FILE` and `bmsctl job export NAME`: the configuration-management interface.
//!
//! The file holds `targets` and `jobs` lists (`[[targets]]` / `[[jobs]]` tables in TOML) with the
//! same field names as `--json` output. Applying is idempotent: what matches is left alone.

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use crate::output;
use bms_proto::api::{Apply, GetJob, GetTarget};
use std::io::Read;
use std::path::Path;

fn read_file(file: &Path) -> Result<(String, bool), CliError> {
    let mut text = String::new();
    let is_json = if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::failure(format!("cannot read standard input: {e}")))?;
        text.trim_start().starts_with('{')
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
        file.extension().is_some_and(|e| e == "json")
    };
    Ok((text, is_json))
}

/// Parses an apply document (TOML or JSON) into the request. A name defined twice in one list
/// is refused, naming the lines of both (or their list positions when a line is not known).
pub fn parse(text: &str, is_json: bool, origin: &str) -> Result<Apply, CliError> {
    let parsed: Result<Apply, String> = if is_json {
        serde_json::from_str(text).map_err(|e| e.to_string())
    } else {
        toml::from_str(text).map_err(|e| e.to_string())
    };
    let req = parsed
        .map_err(|e| CliError::usage(format!("{origin} is not a valid bms configuration: {e}")))?;
    let lines = crate::apply_lines::EntryLines::find(text, is_json);
    for (list, names) in [
        (
            "targets",
            req.targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
        ),
        ("jobs", req.jobs.iter().map(|j| j.name.as_str()).collect()),
    ] {
        if let Some((first, second)) = duplicate(&names) {
            let place = |i: usize| match lines.line(list, i) {
                Some(line) => format!("line {line}"),
                None => format!("{list}[{i}]"),
            };
            let what = if list == "jobs" { "job" } else { "target" };
            return Err(CliError::usage(format!(
                "{origin}: {what} '{}' is defined twice, at {} and at {}: keep one of them",
                names[first],
                place(first),
                place(second)
            )));
        }
    }
    Ok(req)
}

/// The first name that appears twice: the positions of its first and second appearance.
fn duplicate(names: &[&str]) -> Option<(usize, usize)> {
    names.iter().enumerate().find_map(|(i, n)| {
        names[..i]
            .iter()
            .position(|m| m == n)
            .map(|first| (first, i))
    })
}

/// The notes on settings of the file that are stored but not yet enforced.
fn notes(req: &Apply) -> Vec<String> {
    let mut out = Vec::new();
    for t in &req.targets {
        for n in crate::notes::target_spec(t) {
            out.push(format!("target:{}: {n}", t.name));
        }
    }
    for j in &req.jobs {
        for n in crate::notes::job(j) {
            out.push(format!("job:{}: {n}", j.name));
        }
    }
    out
}

pub fn apply(cli: &Cli, file: &Path, dry_run: bool) -> CliResult {
    let (text, is_json) = read_file(file)?;
    let mut req = parse(&text, is_json, &file.display().to_string())?;
    req.dry_run = dry_run;
    let batches = crate::apply_batch::split(&req);
    let reply = crate::apply_batch::apply(&batches, dry_run, |b| call(cli, b))?;
    let notes = notes(&req);
    if cli.json {
        return output::json(&crate::notes::with_notes(&reply, notes));
    }
    let verb = if reply.dry_run { "would be " } else { "" };
    for (what, list) in [
        ("created", &reply.created),
        ("updated", &reply.updated),
        ("unchanged", &reply.unchanged),
    ] {
        for entry in list {
            println!("{entry}: {verb}{what}");
        }
    }
    println!(
        "{} created, {} updated, {} unchanged{}",
        reply.created.len(),
        reply.updated.len(),
        reply.unchanged.len(),
        if reply.dry_run {
            " (dry run: nothing stored)"
        } else {
            ""
        }
    );
    for n in notes {
        println!("note: {n}");
    }
    Ok(())
}

/// Prints a job with the targets it uses, ready for `bmsctl apply`.
pub fn export(cli: &Cli, name: &str) -> CliResult {
    let job = call(cli, &GetJob { name: name.into() })?.job.spec;
    let mut targets = Vec::new();
    for t in &job.targets {
        targets.push(call(cli, &GetTarget { name: t.clone() })?.target.spec);
    }
    let doc = Apply {
        targets,
        jobs: vec![job],
        dry_run: false,
    };
    if cli.json {
        return output::json(&serde_json::json!({"targets": doc.targets, "jobs": doc.jobs}));
    }
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        targets: &'a [bms_proto::api::TargetSpec],
        jobs: &'a [bms_proto::api::JobSpec],
    }
    let text = toml::to_string(&Doc {
        targets: &doc.targets,
        jobs: &doc.jobs,
    })
    .map_err(|e| CliError::failure(format!("cannot write TOML: {e}")))?;
    let notes: String = notes(&doc)
        .iter()
        .map(|n| format!("# note: {n}\n"))
        .collect();
    print!(
        "# bms configuration exported from job '{name}'; load it with: bmsctl apply FILE\n{notes}{text}"
    );
    Ok(())
}
