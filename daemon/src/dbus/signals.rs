//! Signals and property changes from the event bus (docs/architecture.md, "Events"): a
//! subscriber like any other, which never holds up a run — when it falls behind it is told so
//! and re-reads the properties.

use super::manager::Manager;
use crate::runner::RunnerRef;
use bms_proto::api::Event;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use zbus::object_server::InterfaceRef;

/// `OpenAlerts` is also re-read this often (an alert acknowledged or resolved through the API
/// has no event).
const ALERTS_EVERY: Duration = Duration::from_secs(10);

/// The longest a property waits to be re-read while events keep coming.
const REREAD_AFTER: Duration = Duration::from_secs(1);

/// At most this many `JobProgress` signals per second per run.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Emits the signals of `org.bms.Manager1` until `cancel` fires.
pub async fn run(runner: RunnerRef, iface: InterfaceRef<Manager>, cancel: CancellationToken) {
    let mut events = runner.shared.events.subscribe();
    let mut last_progress: HashMap<i64, Instant> = HashMap::new();
    let mut props = (
        Manager::state_of(&runner),
        Manager::running_jobs_of(&runner),
    );
    let mut open_alerts = Manager::open_alerts_of(&runner).await;
    let mut compliant = Manager::compliant_jobs_of(&runner).await;
    let mut alerts_tick = tokio::time::interval(ALERTS_EVERY);
    // Properties to re-read, and since when: they are re-read once a burst of events has been
    // taken in (a compliance evaluation of many jobs publishes one event per changed rule, and
    // `CompliantJobs` costs a full evaluation), or after [`REREAD_AFTER`] of steady events.
    let mut alerts_dirty = false;
    let mut compliance_dirty = false;
    let mut dirty_since: Option<Instant> = None;
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.recv() => Some(ev),
            _ = alerts_tick.tick() => None,
        };
        let e = iface.signal_emitter();
        // Alerts change with these events (a good run resolves, a failed one raises); a lag may
        // have hidden any change.
        match &ev {
            Some(Ok(Event::RunProgress { .. })) => {}
            Some(Ok(Event::ComplianceChanged { .. })) | Some(Err(RecvError::Lagged(_))) => {
                alerts_dirty = true;
                compliance_dirty = true;
            }
            _ => alerts_dirty = true,
        }
        if alerts_dirty || compliance_dirty {
            let since = *dirty_since.get_or_insert_with(Instant::now);
            if events.is_empty() || since.elapsed() >= REREAD_AFTER {
                dirty_since = None;
                if std::mem::take(&mut alerts_dirty) {
                    let now = Manager::open_alerts_of(&runner).await;
                    if now != open_alerts {
                        open_alerts = now;
                        let manager = iface.get().await;
                        let _ = manager.open_alerts_changed(e).await;
                    }
                }
                if std::mem::take(&mut compliance_dirty) {
                    let now = Manager::compliant_jobs_of(&runner).await;
                    if now != compliant {
                        compliant = now;
                        let manager = iface.get().await;
                        let _ = manager.compliant_jobs_changed(e).await;
                    }
                }
            }
        }
        let Some(ev) = ev else { continue };
        let sent = match ev {
            Ok(Event::RunStarted { run }) => {
                Manager::job_started(e, &run.job, run.id, run.kind.as_str()).await
            }
            Ok(Event::RunProgress {
                run, job, progress, ..
            }) => {
                let now = Instant::now();
                match last_progress.get(&run) {
                    Some(t) if now.duration_since(*t) < PROGRESS_EVERY => Ok(()),
                    _ => {
                        last_progress.insert(run, now);
                        Manager::job_progress(
                            e,
                            &job,
                            run,
                            &progress.phase,
                            progress.files,
                            progress.bytes_read,
                            progress.bytes_expected,
                        )
                        .await
                    }
                }
            }
            Ok(Event::RunFinished {
                run, state, error, ..
            }) => {
                last_progress.remove(&run.id);
                let error = error.unwrap_or_default();
                Manager::job_finished(e, &run.job, run.id, state.as_str(), &error).await
            }
            Ok(Event::AlertRaised {
                alert,
                job,
                message,
            }) => Manager::alert_raised(e, &alert, job.as_deref().unwrap_or(""), &message).await,
            Ok(Event::ComplianceChanged {
                job,
                compliant,
                reason,
                ..
            }) => Manager::compliance_changed(e, &job, compliant, &reason).await,
            Ok(_) => Ok(()),
            Err(RecvError::Lagged(n)) => {
                debug!("D-Bus signals missed {n} events; properties are re-read");
                Ok(())
            }
            Err(RecvError::Closed) => return,
        };
        if let Err(err) = sent {
            debug!("cannot send a D-Bus signal: {err}");
        }
        // The properties follow the runner; PropertiesChanged when they changed.
        let now = (
            Manager::state_of(&runner),
            Manager::running_jobs_of(&runner),
        );
        if now != props {
            let manager = iface.get().await;
            if now.0 != props.0 {
                let _ = manager.state_changed(e).await;
            }
            if now.1 != props.1 {
                let _ = manager.running_jobs_changed(e).await;
            }
            props = now;
        }
    }
}
