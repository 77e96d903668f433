//! What the 3-2-1-1-0 checker reads (docs/compliance.md), in a handful of queries, and the
//! history of its verdicts (`compliance_history`).

use super::targets::{row_to_info, COLUMNS};
use super::{db_err, Catalog};
use crate::compliance::{unix_of, Facts, SnapFact, VerifyFact};
use bms_proto::api::{ComplianceChange, DrillStats, JobSpec, Rule, Verdict};
use bms_proto::ApiError;
use rusqlite::params;
use std::collections::HashMap;

/// A verdict change to record.
#[derive(Debug, Clone)]
pub struct NewChange {
    pub job: String,
    pub rule: Rule,
    pub from: Option<Verdict>,
    pub to: Verdict,
    pub reason: String,
}

impl Catalog {
    /// Every fact the checker needs, as of `now` (seconds since the epoch).
    pub fn compliance_facts(&self, now: i64) -> Result<Facts, ApiError> {
        let mut facts = Facts {
            now,
            ..Default::default()
        };
        let mut stmt = self
            .conn
            .prepare("SELECT name, spec FROM jobs ORDER BY name")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db_err)?;
        for row in rows {
            let (name, spec) = row.map_err(db_err)?;
            match serde_json::from_str::<JobSpec>(&spec) {
                Ok(j) => facts.jobs.push(j),
                Err(e) => tracing::warn!(job = %name, "stored job cannot be read: {e}"),
            }
        }
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM targets"))
            .map_err(db_err)?;
        for row in stmt.query_map([], row_to_info).map_err(db_err)? {
            let (_, info) = row.map_err(db_err)?;
            facts.targets.insert(info.spec.name.clone(), info.spec);
        }
        // The latest complete snapshot per job and target (SQLite takes the bare columns from
        // the row of max()).
        let mut stmt = self
            .conn
            .prepare(
                "SELECT job, target, id, max(time), run_id FROM snapshots WHERE partial = 0 \
                 GROUP BY job, target",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (job, target, id, time, run) = row.map_err(db_err)?;
            if let Some(unix) = unix_of(&time) {
                facts.snapshots.insert(
                    (job, target),
                    SnapFact {
                        id,
                        time,
                        unix,
                        run,
                    },
                );
            }
        }
        let now_text = crate::compliance::rfc3339(now);
        let mut stmt = self
            .conn
            .prepare("SELECT target, snapshot, until FROM seals WHERE until > ?1")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([&now_text], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (t, s, u) = row.map_err(db_err)?;
            facts.seals.insert((t, s), u);
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT job, target, max(id), kind, state, finished_at, error, read_data_percent, \
                 verify_errors FROM runs WHERE kind IN ('verify', 'drill') \
                 AND state IN ('succeeded', 'failed') AND target IS NOT NULL \
                 AND finished_at IS NOT NULL GROUP BY job, target",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    VerifyFact {
                        run: r.get(2)?,
                        kind: r.get(3)?,
                        state: r.get(4)?,
                        finished_at: r.get(5)?,
                        unix: 0,
                        error: r.get(6)?,
                        read_data_percent: r
                            .get::<_, Option<i64>>(7)?
                            .map(|p| p.clamp(0, 100) as u8),
                        problems: r.get(8)?,
                    },
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (key, mut v) = row.map_err(db_err)?;
            v.unix = unix_of(&v.finished_at).unwrap_or(0);
            facts.verifications.insert(key, v);
        }
        let names: Vec<String> = facts.jobs.iter().map(|j| j.name.clone()).collect();
        for job in names {
            for (target, media) in self.tape_media_of(&job)? {
                facts.media.insert((job.clone(), target), media);
            }
        }
        // A snapshot record on a tape target counts only while a complete archive on media
        // that still hold it backs it (an erased or recycled medium's archives stop counting).
        let tapes: Vec<String> = facts
            .targets
            .values()
            .filter(|t| t.kind == bms_proto::api::TargetKind::Tape)
            .map(|t| t.name.clone())
            .collect();
        let media = &facts.media;
        facts
            .snapshots
            .retain(|key, _| !tapes.contains(&key.1) || media.contains_key(key));
        Ok(facts)
    }

    /// The media holding a job's latest complete tape copy on each tape target (media types
    /// lto… count as tape, rdx and disk as disk; a vault is offsite).
    fn tape_media_of(
        &self,
        job: &str,
    ) -> Result<Vec<(String, Vec<bms_proto::api::Medium>)>, ApiError> {
        let mut out: Vec<(String, String, Vec<bms_proto::api::Medium>)> = Vec::new();
        for e in self.media_evidence(job)? {
            let media = bms_proto::api::Medium {
                media_type: if e.media_type.starts_with("lto") {
                    "tape".into()
                } else {
                    "disk".into()
                },
                location: if e.offsite { "offsite" } else { "onsite" }.into(),
                label: Some(e.barcode.clone()),
                // A cartridge in a library slot is reachable by the changer: online, as in a
                // drive (docs/compliance.md).
                in_drive: Some(e.in_drive || matches!(e.location, super::Location::Slot(_))),
            };
            match out.iter_mut().find(|(t, _, _)| *t == e.target) {
                // Newest archive first: only the volumes of the latest one count.
                Some((_, snap, list)) if *snap == e.snapshot => list.push(media),
                Some(_) => {}
                None => out.push((e.target.clone(), e.snapshot.clone(), vec![media])),
            }
        }
        Ok(out.into_iter().map(|(t, _, m)| (t, m)).collect())
    }

    /// Records what a verification's own check found on `run` (before the run is finished).
    pub fn set_verify_result(
        &mut self,
        run: i64,
        read_data_percent: u8,
        problems: Option<u64>,
    ) -> Result<(), ApiError> {
        self.conn
            .execute(
                "UPDATE runs SET read_data_percent = ?2, verify_errors = ?3 WHERE id = ?1",
                params![
                    run,
                    read_data_percent,
                    problems.map(|p| i64::try_from(p).unwrap_or(i64::MAX))
                ],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// Records what a restore drill restored, found and projects (docs/compliance.md).
    pub fn set_drill_stats(&mut self, run: i64, stats: &DrillStats) -> Result<(), ApiError> {
        let json = serde_json::to_string(stats)
            .map_err(|e| ApiError::internal(format!("encoding drill statistics: {e}")))?;
        self.conn
            .execute(
                "UPDATE runs SET drill_stats = ?2 WHERE id = ?1",
                params![run, json],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// Records how many problems a restore drill found (None: it could not run).
    pub fn set_drill_problems(&mut self, run: i64, problems: Option<u64>) -> Result<(), ApiError> {
        self.conn
            .execute(
                "UPDATE runs SET verify_errors = ?2 WHERE id = ?1",
                params![run, problems.map(|p| i64::try_from(p).unwrap_or(i64::MAX))],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// The latest recorded verdict of every job's every rule.
    pub fn compliance_verdicts(&self) -> Result<HashMap<(String, Rule), Verdict>, ApiError> {
        let mut stmt = self
            .conn
            .prepare("SELECT job, rule, \"to\", max(id) FROM compliance_history GROUP BY job, rule")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = HashMap::new();
        for row in rows {
            let (job, rule, to) = row.map_err(db_err)?;
            if let (Some(rule), Some(to)) = (Rule::parse(&rule), Verdict::parse(&to)) {
                out.insert((job, rule), to);
            }
        }
        Ok(out)
    }

    /// Records verdict changes in one transaction; returns them with their ids and time.
    pub fn record_compliance_changes(
        &mut self,
        changes: &[NewChange],
    ) -> Result<Vec<ComplianceChange>, ApiError> {
        let time = super::now_rfc3339();
        let tx = self.conn.transaction().map_err(db_err)?;
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            tx.execute(
                "INSERT INTO compliance_history(time, job, rule, \"from\", \"to\", reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    time,
                    c.job,
                    c.rule.as_str(),
                    c.from.map(Verdict::as_str),
                    c.to.as_str(),
                    c.reason
                ],
            )
            .map_err(db_err)?;
            out.push(ComplianceChange {
                id: tx.last_insert_rowid(),
                time: time.clone(),
                job: c.job.clone(),
                rule: c.rule,
                from: c.from,
                to: c.to,
                reason: c.reason.clone(),
            });
        }
        tx.commit().map_err(db_err)?;
        Ok(out)
    }

    /// Recorded changes, newest first.
    pub fn compliance_history(
        &self,
        job: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ComplianceChange>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, time, job, rule, \"from\", \"to\", reason FROM compliance_history \
                 WHERE (?1 IS NULL OR job = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![job, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, time, job, rule, from, to, reason) = row.map_err(db_err)?;
            let (Some(rule), Some(to)) = (Rule::parse(&rule), Verdict::parse(&to)) else {
                continue;
            };
            out.push(ComplianceChange {
                id,
                time,
                job,
                rule,
                from: from.as_deref().and_then(Verdict::parse),
                to,
                reason,
            });
        }
        Ok(out)
    }
}
