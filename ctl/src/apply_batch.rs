//! Applying a file too large for one message (docs/protocol.md, "Limits"): the jobs are sent
//! in batches under bmsd's message limit, each batch with all of the file's targets.
//!
//! All or nothing as far as bmsd can tell beforehand: every batch is first applied as a dry
//! run, and only when all of them pass are they applied for real, in order. Should a later
//! batch still fail (bmsd stopped, a source vanished in between), the batches before it stay
//! applied; the error says how far it got, and applying the file again finishes the job
//! (apply is idempotent).

use crate::error::{CliError, CliResult};
use bms_proto::api::{Apply, ApplyReply, JobSpec};
use bms_proto::varlink::MAX_MESSAGE;

/// How large one batch's parameters may be: well under the limit, leaving room for the
/// message around them.
const BATCH_BYTES: usize = MAX_MESSAGE / 2;

fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// One batch and the position of its first job in the file.
pub struct Batch {
    pub request: Apply,
    pub first_job: usize,
}

/// Splits a request into batches under [`BATCH_BYTES`]; a request that fits is one batch.
/// A single job too large for a message stays alone in its batch (the client then refuses
/// it, naming the limit).
pub fn split(req: &Apply) -> Vec<Batch> {
    if encoded_len(req) <= BATCH_BYTES {
        return vec![Batch {
            request: req.clone(),
            first_job: 0,
        }];
    }
    let empty = Apply {
        targets: req.targets.clone(),
        jobs: Vec::new(),
        dry_run: req.dry_run,
    };
    let base = encoded_len(&empty);
    let mut out: Vec<Batch> = Vec::new();
    let mut jobs: Vec<JobSpec> = Vec::new();
    let mut size = base;
    let mut first = 0;
    for (i, job) in req.jobs.iter().enumerate() {
        let len = encoded_len(job) + 1;
        if !jobs.is_empty() && size + len > BATCH_BYTES {
            out.push(Batch {
                request: Apply {
                    jobs: std::mem::take(&mut jobs),
                    ..empty.clone()
                },
                first_job: first,
            });
            size = base;
            first = i;
        }
        size += len;
        jobs.push(job.clone());
    }
    out.push(Batch {
        request: Apply { jobs, ..empty },
        first_job: first,
    });
    out
}

/// Makes an error of one batch name the job's place in the whole file (`jobs[12034]`) rather
/// than in its batch.
fn in_file(e: CliError, first_job: usize) -> CliError {
    let shift = |s: &str| -> String {
        let Some(rest) = s.strip_prefix("jobs[") else {
            return s.to_owned();
        };
        match rest.split_once(']') {
            Some((n, tail)) => match n.parse::<usize>() {
                Ok(n) => format!("jobs[{}]{tail}", n + first_job),
                Err(_) => s.to_owned(),
            },
            None => s.to_owned(),
        }
    };
    match e {
        CliError::Daemon { mut error, code } => {
            error.message = shift(&error.message);
            error.field = error.field.as_deref().map(shift);
            CliError::Daemon { error, code }
        }
        other => other,
    }
}

/// Applies the batches through `call`; the reply is the one the whole file would have had.
pub fn apply(
    batches: &[Batch],
    dry_run: bool,
    mut call: impl FnMut(&Apply) -> CliResult<ApplyReply>,
) -> CliResult<ApplyReply> {
    let run = |dry: bool, call: &mut dyn FnMut(&Apply) -> CliResult<ApplyReply>| {
        let mut merged = ApplyReply {
            dry_run: dry,
            ..Default::default()
        };
        for (n, b) in batches.iter().enumerate() {
            let mut req = b.request.clone();
            req.dry_run = dry;
            let reply = call(&req).map_err(|e| {
                let e = in_file(e, b.first_job);
                if dry || n == 0 {
                    e
                } else {
                    with_progress(e, n, batches.len(), b.first_job)
                }
            })?;
            // Every batch carries the targets: count them once, from the first.
            let keep = |entry: &String| n == 0 || !entry.starts_with("target:");
            merged
                .created
                .extend(reply.created.into_iter().filter(keep));
            merged
                .updated
                .extend(reply.updated.into_iter().filter(keep));
            merged
                .unchanged
                .extend(reply.unchanged.into_iter().filter(keep));
        }
        Ok(merged)
    };
    if batches.len() == 1 {
        // One message: bmsd applies it all or nothing by itself.
        return run(dry_run, &mut call);
    }
    let checked = run(true, &mut call)?;
    if dry_run {
        return Ok(checked);
    }
    run(false, &mut call)
}

fn with_progress(e: CliError, done: usize, total: usize, first_job: usize) -> CliError {
    let note = format!(
        " (the file was sent in {total} parts; the first {done} were applied, jobs before \
         jobs[{first_job}]; fix the problem and apply the file again)"
    );
    match e {
        CliError::Daemon { mut error, code } => {
            error.message.push_str(&note);
            CliError::Daemon { error, code }
        }
        CliError::Failure(m) => CliError::Failure(m + &note),
        CliError::Usage(m) => CliError::Usage(m + &note),
        CliError::Unreachable(m) => CliError::Unreachable(m + &note),
        CliError::Denied(m) => CliError::Denied(m + &note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(i: usize) -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "name": format!("job-{i:05}"),
            "sources": [format!("/srv/data/{i}")],
            "schedule": "daily",
            "targets": ["t"],
        }))
        .unwrap()
    }

    #[test]
    fn a_small_file_is_one_batch_and_a_large_one_is_split_under_the_limit() {
        let small = Apply {
            jobs: (0..3).map(job).collect(),
            ..Default::default()
        };
        assert_eq!(split(&small).len(), 1);
        let large = Apply {
            jobs: (0..10_000).map(job).collect(),
            ..Default::default()
        };
        let batches = split(&large);
        assert!(batches.len() > 1);
        let mut next = 0;
        for b in &batches {
            assert!(encoded_len(&b.request) <= BATCH_BYTES);
            assert_eq!(b.first_job, next);
            next += b.request.jobs.len();
        }
        assert_eq!(next, 10_000);
    }

    #[test]
    fn nothing_is_stored_when_a_batch_fails_its_dry_run() {
        let large = Apply {
            jobs: (0..10_000).map(job).collect(),
            ..Default::default()
        };
        let batches = split(&large);
        let mut real_calls = 0;
        let r = apply(&batches, false, |req| {
            if !req.dry_run {
                real_calls += 1;
            }
            if req.jobs.iter().any(|j| j.name == "job-09999") {
                return Err(CliError::daemon(bms_proto::ApiError::invalid(
                    "jobs[3].schedule",
                    "jobs[3] 'job-09999': bad",
                )));
            }
            Ok(ApplyReply::default())
        });
        assert_eq!(real_calls, 0);
        let e = r.err().unwrap();
        let last = batches.last().unwrap().first_job;
        assert!(
            e.to_string().starts_with(&format!("jobs[{}]", last + 3)),
            "{e}"
        );
    }
}
