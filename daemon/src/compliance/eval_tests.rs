use super::*;
use crate::compliance::{SnapFact, VerifyFact};

const NOW: i64 = 1_796_000_000;

fn job(targets: &[&str]) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "name": "etc", "sources": ["/etc"], "schedule": "daily", "targets": targets,
        "rpo_secs": 86400
    }))
    .unwrap()
}

fn facts(targets: Vec<TargetSpec>, j: JobSpec) -> Facts {
    let mut f = Facts {
        now: NOW,
        ..Default::default()
    };
    for t in targets {
        f.snapshots.insert(
            (j.name.clone(), t.name.clone()),
            SnapFact {
                id: format!("snap-{}", t.name),
                time: String::new(),
                unix: NOW - 60,
                run: Some(1),
            },
        );
        f.targets.insert(t.name.clone(), t);
    }
    f.jobs.push(j);
    f
}

fn verdicts(c: &JobCompliance) -> Vec<Verdict> {
    c.rules.iter().map(|r| r.verdict).collect()
}

#[test]
fn one_onsite_disk_fails_three_two_one_one_and_zero_is_unknown() {
    let f = facts(vec![TargetSpec::disk("local", "/r")], job(&["local"]));
    let c = &evaluate(&f, None)[0];
    use Verdict::*;
    assert_eq!(verdicts(c), vec![Fail, Fail, Fail, Fail, Unknown]);
    assert!(!c.compliant);
    let off = c.rule(Rule::Offsite).unwrap();
    assert!(off.hint.as_ref().unwrap().contains("--location offsite"));
    let zero = c.rule(Rule::Errors).unwrap();
    assert!(zero
        .hint
        .as_ref()
        .unwrap()
        .contains("bmsctl verify --job etc --target local"));
}

#[test]
fn offsite_immutable_second_copy_passes_all_but_media() {
    let mut off = TargetSpec::disk("vault", "/v");
    off.location = bms_proto::api::Location::Offsite;
    off.immutable_days = 7;
    let mut f = facts(
        vec![TargetSpec::disk("local", "/r"), off],
        job(&["local", "vault"]),
    );
    f.seals.insert(
        ("vault".into(), "snap-vault".into()),
        "2099-01-01T00:00:00Z".into(),
    );
    for t in ["local", "vault"] {
        f.verifications.insert(
            ("etc".into(), t.into()),
            VerifyFact {
                run: 7,
                kind: "verify".into(),
                state: "succeeded".into(),
                finished_at: crate::compliance::rfc3339(NOW - 100),
                unix: NOW - 100,
                error: None,
                read_data_percent: Some(10),
                problems: Some(0),
            },
        );
    }
    use Verdict::*;
    let c = evaluate(&f, None).remove(0);
    assert_eq!(verdicts(&c), vec![Pass, Fail, Pass, Pass, Pass]);
    // A failed verification of the copy fails "0", naming target and run.
    if let Some(v) = f.verifications.get_mut(&("etc".into(), "vault".into())) {
        v.run = 9;
        v.state = "failed".into();
        v.problems = Some(2);
    }
    let c = evaluate(&f, None).remove(0);
    let zero = c.rule(Rule::Errors).unwrap();
    assert_eq!(zero.verdict, Fail);
    assert!(
        zero.reason.contains("vault") && zero.reason.contains("run 9"),
        "{}",
        zero.reason
    );
    // A verification older than the window fails too, with the hint of the brief.
    if let Some(v) = f.verifications.get_mut(&("etc".into(), "vault".into())) {
        v.state = "succeeded".into();
        v.problems = Some(0);
        v.finished_at = crate::compliance::rfc3339(NOW - 41 * 86400);
    }
    let c = evaluate(&f, None).remove(0);
    let zero = c.rule(Rule::Errors).unwrap();
    assert_eq!(zero.verdict, Fail);
    assert!(zero
        .hint
        .as_ref()
        .unwrap()
        .contains("last verified 41 days ago"));
}

#[test]
fn a_stale_snapshot_is_no_copy_and_offline_tape_media_count() {
    let mut tape = TargetSpec::disk("lto", "/dev/nst0");
    tape.kind = bms_proto::api::TargetKind::Tape;
    let mut f = facts(
        vec![TargetSpec::disk("local", "/r"), tape],
        job(&["local", "lto"]),
    );
    f.media.insert(
        ("etc".into(), "lto".into()),
        vec![Medium {
            media_type: "tape".into(),
            location: "offsite".into(),
            label: Some("A00001L9".into()),
            in_drive: Some(false),
        }],
    );
    use Verdict::*;
    let c = evaluate(&f, None).remove(0);
    assert_eq!(verdicts(&c)[..4], [Pass, Pass, Pass, Pass]);
    if let Some(s) = f.snapshots.get_mut(&("etc".into(), "lto".into())) {
        s.unix = NOW - 2 * 86400;
    }
    let c = evaluate(&f, None).remove(0);
    assert_eq!(verdicts(&c)[..4], [Fail, Fail, Fail, Fail]);
}
