//! Pruning of old run records, so that the catalog does not grow without bound.

use super::{db_err, Catalog};
use bms_proto::ApiError;

impl Catalog {
    /// Deletes finished runs that ended before `before` (RFC 3339, the catalog's format), except
    /// those the status and metrics report: each job's latest finished run of every kind, its
    /// latest successful backup, and its latest verification that reached a verdict. Returns
    /// how many were deleted.
    pub fn prune_runs(&mut self, before: &str) -> Result<usize, ApiError> {
        self.conn
            .execute(
                "DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1 \
                 AND id NOT IN (SELECT max(id) FROM runs WHERE finished_at IS NOT NULL \
                                GROUP BY job, kind) \
                 AND id NOT IN (SELECT max(id) FROM runs WHERE kind = 'backup' \
                                AND state IN ('succeeded', 'warning') GROUP BY job) \
                 AND id NOT IN (SELECT max(id) FROM runs r WHERE kind = 'verify' \
                                AND state IN ('succeeded', 'failed') \
                                AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.id = r.parent_run \
                                                AND p.kind = 'verify') GROUP BY job)",
                [before],
            )
            .map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::NewRun;
    use bms_proto::api::{RunKind, RunState, RunStats, RunTrigger};

    fn run(c: &mut Catalog, job: &str, kind: RunKind, state: RunState, day: u32) -> i64 {
        let r = c
            .insert_run(&NewRun {
                job,
                kind,
                trigger: RunTrigger::Schedule,
                state: RunState::Queued,
                target: Some("local"),
                source_target: None,
                parent_run: None,
                error: None,
            })
            .unwrap();
        c.finish_run(r.id, state, None, &RunStats::default(), None, &[])
            .unwrap();
        c.conn
            .execute(
                "UPDATE runs SET finished_at = ?1 WHERE id = ?2",
                rusqlite::params![format!("2025-01-{day:02}T00:00:00.000Z"), r.id],
            )
            .unwrap();
        r.id
    }

    fn ids(c: &Catalog) -> Vec<i64> {
        let mut stmt = c.conn.prepare("SELECT id FROM runs ORDER BY id").unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    }

    #[test]
    fn old_runs_go_but_the_latest_of_each_kind_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        use RunKind::*;
        use RunState::*;
        let ok_backup = run(&mut c, "a", Backup, Succeeded, 1);
        let old_fail = run(&mut c, "a", Backup, Failed, 2);
        let verdict = run(&mut c, "a", Verify, Failed, 3);
        let last_backup = run(&mut c, "a", Backup, Failed, 4);
        let last_verify = run(&mut c, "a", Verify, Cancelled, 5);
        let old_b = run(&mut c, "b", Backup, Succeeded, 6);
        let new_b = run(&mut c, "b", Backup, Succeeded, 20);
        let pending = c
            .insert_run(&NewRun {
                job: "b",
                kind: Backup,
                trigger: RunTrigger::Manual,
                state: RunState::Queued,
                target: None,
                source_target: None,
                parent_run: None,
                error: None,
            })
            .unwrap()
            .id;
        let n = c.prune_runs("2025-01-10T00:00:00.000Z").unwrap();
        assert_eq!(n, 2);
        assert!(!ids(&c).contains(&old_fail));
        assert!(!ids(&c).contains(&old_b));
        assert_eq!(
            ids(&c),
            vec![ok_backup, verdict, last_backup, last_verify, new_b, pending]
        );
        // Nothing is old enough any more.
        assert_eq!(c.prune_runs("2025-01-10T00:00:00.000Z").unwrap(), 0);
    }
}
