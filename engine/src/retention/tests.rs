use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cand(id: &str, t: &str, tags: &[&str]) -> Candidate {
    Candidate {
        id: id.into(),
        time: ts(t),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        complete: true,
    }
}

fn kept(d: &[Decision]) -> Vec<String> {
    let mut v: Vec<String> = d.iter().filter(|d| d.keep).map(|d| d.id.clone()).collect();
    v.sort();
    v
}

/// Parses restic's command-line form of a policy (the fixtures record it).
fn parse_args(args: &[String]) -> Policy {
    let mut p = Policy::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().unwrap();
        let n = || v.parse::<u32>().unwrap();
        let d = || Some(v.parse::<KeepDuration>().unwrap());
        match flag.as_str() {
            "--keep-last" => p.last = n(),
            "--keep-hourly" => p.hourly = n(),
            "--keep-daily" => p.daily = n(),
            "--keep-weekly" => p.weekly = n(),
            "--keep-monthly" => p.monthly = n(),
            "--keep-yearly" => p.yearly = n(),
            "--keep-within" => p.within = d(),
            "--keep-within-hourly" => p.within_hourly = d(),
            "--keep-within-daily" => p.within_daily = d(),
            "--keep-within-weekly" => p.within_weekly = d(),
            "--keep-within-monthly" => p.within_monthly = d(),
            "--keep-within-yearly" => p.within_yearly = d(),
            "--keep-tag" => p.tags.push(v.split(',').map(String::from).collect()),
            other => panic!("unknown flag {other}"),
        }
    }
    p
}

#[derive(serde::Deserialize)]
struct Fixture {
    tz: String,
    snapshots: Vec<FixtureSnap>,
    policies: Vec<FixturePolicy>,
}
#[derive(serde::Deserialize)]
struct FixtureSnap {
    time: String,
    tags: Vec<String>,
}
#[derive(serde::Deserialize)]
struct FixturePolicy {
    args: Vec<String>,
    keep: Vec<usize>,
}

/// Acceptance: the kept sets equal what restic 0.14 `forget --dry-run --json` kept on the same
/// timeline (tests/fixtures/retention/make-fixtures.sh made the fixture).
#[test]
fn same_kept_sets_as_restic() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/retention/restic-forget.json"
    );
    let fx: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let tz = TimeZone::get(&fx.tz).unwrap();
    assert!(fx.snapshots.len() >= 300, "a long timeline");
    assert!(fx.policies.len() >= 20, "at least 20 policies");
    let snaps: Vec<Candidate> = fx
        .snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| Candidate {
            id: format!("{i:05}"),
            time: ts(&s.time),
            tags: s.tags.clone(),
            complete: true,
        })
        .collect();
    let now = ts("2026-12-01T00:00:00Z");
    let mut failures = Vec::new();
    for p in &fx.policies {
        let policy = parse_args(&p.args);
        let got: Vec<usize> = policy
            .apply_rules(&snaps, &tz, now)
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.parse().unwrap())
            .collect::<BTreeSet<usize>>()
            .into_iter()
            .collect();
        if got != p.keep {
            let extra: Vec<_> = got.iter().filter(|i| !p.keep.contains(i)).collect();
            let missing: Vec<_> = p.keep.iter().filter(|i| !got.contains(i)).collect();
            failures.push(format!(
                "{}: bms keeps {} extra {:?}, misses {:?}",
                p.args.join(" "),
                got.len(),
                extra
                    .iter()
                    .map(|i| &fx.snapshots[**i].time)
                    .collect::<Vec<_>>(),
                missing
                    .iter()
                    .map(|i| &fx.snapshots[**i].time)
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn calendar_rules_count_only_buckets_with_snapshots_and_keep_the_latest() {
    let tz = TimeZone::UTC;
    let snaps = vec![
        cand("a", "2026-11-30T08:00:00Z", &[]),
        cand("b", "2026-11-30T20:00:00Z", &[]),
        cand("c", "2026-11-27T10:00:00Z", &[]), // gap of two days: still the second bucket
        cand("d", "2026-11-20T10:00:00Z", &[]),
    ];
    let p = Policy {
        daily: 2,
        ..Default::default()
    };
    let d = p.apply(&snaps, &tz, ts("2026-12-01T00:00:00Z")).unwrap();
    assert_eq!(kept(&d), vec!["b", "c"]);
    assert_eq!(d[0].reasons, vec!["daily 2026-11-30"]);
    assert_eq!(d[1].reasons, Vec::<String>::new());
    assert!(!d[3].keep);
}

#[test]
fn reasons_name_the_rule_and_the_bucket() {
    let tz = TimeZone::UTC;
    let snaps = vec![
        cand("a", "2026-11-30T08:00:00Z", &["manual"]),
        cand("b", "2026-11-23T08:00:00Z", &[]),
        cand("c", "2026-10-01T08:00:00Z", &[]),
    ];
    let p = Policy {
        last: 1,
        weekly: 2,
        within: Some(KeepDuration::days(7)),
        tags: vec![vec!["manual".into()]],
        ..Default::default()
    };
    let d = p.apply(&snaps, &tz, ts("2026-12-01T00:00:00Z")).unwrap();
    assert_eq!(
        d[0].reasons,
        vec!["tag manual", "within 7d", "last 1", "weekly 2026-W49"]
    );
    assert_eq!(d[1].reasons, vec!["weekly 2026-W48"]);
    assert!(!d[2].keep);
}

#[test]
fn within_is_measured_from_the_latest_snapshot_not_from_now() {
    let tz = TimeZone::UTC;
    let snaps = vec![
        cand("a", "2020-01-10T00:00:00Z", &[]),
        cand("b", "2020-01-05T00:00:00Z", &[]),
        cand("c", "2019-12-01T00:00:00Z", &[]),
    ];
    let p = Policy {
        within: Some("7d".parse().unwrap()),
        ..Default::default()
    };
    let d = p.apply(&snaps, &tz, ts("2026-12-01T00:00:00Z")).unwrap();
    assert_eq!(kept(&d), vec!["a", "b"]);
}

#[test]
fn a_policy_that_keeps_nothing_is_refused() {
    let tz = TimeZone::UTC;
    let snaps = vec![cand("a", "2026-11-30T08:00:00Z", &[])];
    let p = Policy {
        tags: vec![vec!["never".into()]],
        ..Default::default()
    };
    let e = p.apply(&snaps, &tz, Timestamp::now()).unwrap_err();
    assert!(
        e.to_string().contains("would remove all 1 snapshots"),
        "{e}"
    );
    // restic's own semantics would remove it.
    assert!(!p.apply_rules(&snaps, &tz, Timestamp::now())[0].keep);
}

#[test]
fn the_latest_complete_snapshot_is_always_kept() {
    let tz = TimeZone::UTC;
    let mut partial = cand("new", "2026-11-30T10:00:00Z", &["x"]);
    partial.complete = false;
    let snaps = vec![partial, cand("old", "2026-11-01T10:00:00Z", &[])];
    let p = Policy {
        tags: vec![vec!["x".into()]],
        ..Default::default()
    };
    let d = p.apply(&snaps, &tz, Timestamp::now()).unwrap();
    assert_eq!(kept(&d), vec!["new", "old"]);
    assert_eq!(d[1].reasons, vec![LATEST_COMPLETE]);
}

#[test]
fn an_empty_policy_keeps_everything() {
    let snaps = vec![cand("a", "2026-11-30T08:00:00Z", &[])];
    let d = Policy::default()
        .apply(&snaps, &TimeZone::UTC, Timestamp::now())
        .unwrap();
    assert!(d[0].keep);
    assert!(Policy::default().is_empty());
}

#[test]
fn buckets_follow_the_time_zone() {
    // 23:30 UTC on 30 November is 1 December in Berlin.
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let snaps = vec![
        cand("a", "2026-11-30T23:30:00Z", &[]),
        cand("b", "2026-11-30T22:30:00Z", &[]),
    ];
    let p = Policy {
        daily: 2,
        ..Default::default()
    };
    let d = p.apply(&snaps, &tz, ts("2026-12-02T00:00:00Z")).unwrap();
    assert_eq!(kept(&d), vec!["a", "b"]);
    assert_eq!(d[0].reasons, vec!["daily 2026-12-01"]);
    let d = p
        .apply(&snaps, &TimeZone::UTC, ts("2026-12-02T00:00:00Z"))
        .unwrap();
    assert_eq!(kept(&d), vec!["a"]);
}

#[test]
fn durations_parse_and_print() {
    let d: KeepDuration = "1y2m3d4h".parse().unwrap();
    assert_eq!(
        d,
        KeepDuration {
            years: 1,
            months: 2,
            days: 3,
            hours: 4
        }
    );
    assert_eq!(d.to_string(), "1y2m3d4h");
    for bad in ["", "7", "d", "7x", "1d2d", "0d", "99999999999d"] {
        assert!(bad.parse::<KeepDuration>().is_err(), "{bad}");
    }
    // 31 March minus one month rolls over to 3 March (non-leap year), as in restic.
    let t = KeepDuration {
        months: 1,
        ..Default::default()
    }
    .before(ts("2025-03-31T12:00:00Z"), &TimeZone::UTC);
    assert_eq!(t, ts("2025-03-03T12:00:00Z"));
}

#[test]
fn merge_keeps_the_larger_rule() {
    let mut a = Policy {
        daily: 7,
        within: Some(KeepDuration::days(3)),
        ..Default::default()
    };
    let b = Policy {
        daily: 3,
        monthly: 12,
        within: Some("1m".parse().unwrap()),
        tags: vec![vec!["t".into()]],
        ..Default::default()
    };
    a.merge_max(&b);
    assert_eq!(a.daily, 7);
    assert_eq!(a.monthly, 12);
    assert_eq!(a.within.unwrap().to_string(), "1m");
    assert_eq!(a.tags.len(), 1);
    assert_eq!(a.describe(), "daily 7, monthly 12, within 1m, tag t");
}
