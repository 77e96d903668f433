//! The object `/org/bms/Manager1`, interface `org.bms.Manager1` (docs/dbus.md): every method of
//! the method table (bms-proto `manager_methods!`), each taking its parameters and returning its
//! reply as the JSON text the control protocol defines; properties; signals.

use super::error::Error;
use crate::runner::RunnerRef;
use crate::service::{roles, Caller, Operation, Service};
use bms_proto::api::*;
use std::collections::HashMap;
use std::sync::Mutex;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

/// The manager object.
pub struct Manager {
    service: Service,
    runner: RunnerRef,
    /// Callers by unique bus name. A connection's credentials are those it connected with and a
    /// bus never gives a unique name twice, so a caller is looked up once per connection, as on
    /// the control socket (its peer credentials are read once per connection).
    callers: Mutex<HashMap<String, Caller>>,
}

/// How many callers [`Manager::callers`] keeps before it starts again (names of connections that
/// closed are not otherwise forgotten).
const CALLERS_KEPT: usize = 1024;

impl Manager {
    pub fn new(runner: RunnerRef) -> Manager {
        Manager {
            service: Service::new(runner.clone()),
            runner,
            callers: Mutex::new(HashMap::new()),
        }
    }

    /// Who calls: the sender's credentials from the bus (`GetConnectionCredentials`), turned into
    /// a role by the same rule as on the control socket (`service::roles`).
    async fn caller(&self, header: &Header<'_>, conn: &Connection) -> Result<Caller, Error> {
        let sender = header
            .sender()
            .ok_or_else(|| Error::PermissionDenied("the call names no sender".into()))?;
        if let Some(c) = self.cached(sender.as_str()) {
            return Ok(c);
        }
        let creds = zbus::fdo::DBusProxy::new(conn)
            .await?
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(|e| {
                Error::PermissionDenied(format!("cannot read the caller's credentials: {e}"))
            })?;
        let uid = creds.unix_user_id().ok_or_else(|| {
            Error::PermissionDenied("the bus does not tell the caller's uid".into())
        })?;
        let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or(u32::MAX, |u| u.gid.as_raw());
        let pid = creds.process_id().and_then(|p| i32::try_from(p).ok());
        let caller = roles::caller_of(
            uid,
            gid,
            creds.unix_group_ids().cloned(),
            pid,
            self.runner.shared.daemon_uid,
        );
        if let Ok(mut callers) = self.callers.lock() {
            if callers.len() >= CALLERS_KEPT {
                callers.clear();
            }
            callers.insert(sender.to_string(), caller.clone());
        }
        Ok(caller)
    }

    fn cached(&self, sender: &str) -> Option<Caller> {
        self.callers.lock().ok()?.get(sender).cloned()
    }

    /// One method call: who calls, then the service's JSON form of the call.
    async fn call<M: Operation>(
        &self,
        header: &Header<'_>,
        conn: &Connection,
        parameters: &str,
    ) -> Result<String, Error> {
        let caller = self.caller(header, conn).await?;
        let params: serde_json::Value = if parameters.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(parameters).map_err(|e| {
                Error::InvalidArgument(format!(
                    "the parameters of {} are not a JSON object: {e}",
                    M::NAME
                ))
            })?
        };
        let reply = self.service.call_json::<M>(&caller, params).await?;
        Ok(Box::<str>::from(reply).into_string())
    }

    /// `idle`, `queued` (runs wait, none goes) or `running`.
    pub fn state_of(runner: &RunnerRef) -> String {
        let (running, queued) = runner.snapshot();
        match (running.is_empty(), queued.is_empty()) {
            (false, _) => "running",
            (true, false) => "queued",
            (true, true) => "idle",
        }
        .to_owned()
    }

    /// Alerts not resolved (open or acknowledged); 0 when the catalog does not answer.
    pub async fn open_alerts_of(runner: &RunnerRef) -> u32 {
        runner
            .shared
            .catalog
            .call(|c| c.alert_facts())
            .await
            .map_or(0, |(open, _, _)| {
                open.iter()
                    .map(|(_, n)| *n)
                    .sum::<u64>()
                    .min(u32::MAX as u64) as u32
            })
    }

    /// Jobs that pass every rule of 3-2-1-1-0 now (docs/compliance.md); 0 when the catalog does
    /// not answer.
    pub async fn compliant_jobs_of(runner: &RunnerRef) -> u32 {
        crate::compliance::watch::evaluate_now(&runner.shared, None)
            .await
            .map_or(0, |jobs| {
                jobs.iter()
                    .filter(|j| j.compliant)
                    .count()
                    .min(u32::MAX as usize) as u32
            })
    }

    /// The jobs with a run going, sorted, each once.
    pub fn running_jobs_of(runner: &RunnerRef) -> Vec<String> {
        let (running, _) = runner.snapshot();
        let mut jobs: Vec<String> = running
            .into_iter()
            .filter_map(|id| runner.active(id).map(|a| a.job.clone()))
            .collect();
        jobs.sort();
        jobs.dedup();
        jobs
    }
}

macro_rules! dbus_interface {
    ($($name:ident => $reply:ty, $access:ident, $mode:ident;)*) => {
        #[zbus::interface(name = "org.bms.Manager1")]
        impl Manager {
            $(
                #[allow(non_snake_case)]
                #[zbus(out_args("reply"))]
                async fn $name(
                    &self,
                    #[zbus(header)] header: Header<'_>,
                    #[zbus(connection)] conn: &Connection,
                    parameters: String,
                ) -> Result<String, Error> {
                    self.call::<$name>(&header, conn, &parameters).await
                }
            )*

            /// The version of bmsd.
            #[zbus(property)]
            async fn version(&self) -> String {
                bms_proto::VERSION.to_owned()
            }

            /// `idle`, `queued` or `running`.
            #[zbus(property)]
            async fn state(&self) -> String {
                Manager::state_of(&self.runner)
            }

            /// The jobs with a run going.
            #[zbus(property)]
            async fn running_jobs(&self) -> Vec<String> {
                Manager::running_jobs_of(&self.runner)
            }

            /// Alerts not resolved (open or acknowledged).
            #[zbus(property)]
            async fn open_alerts(&self) -> u32 {
                Manager::open_alerts_of(&self.runner).await
            }

            /// Jobs that pass every rule of 3-2-1-1-0 now.
            #[zbus(property)]
            async fn compliant_jobs(&self) -> u32 {
                Manager::compliant_jobs_of(&self.runner).await
            }

            /// A run of `job` started (`kind`: backup, copy, verify).
            #[zbus(signal)]
            pub async fn job_started(
                emitter: &SignalEmitter<'_>,
                job: &str,
                run: i64,
                kind: &str,
            ) -> zbus::Result<()>;

            /// Progress of a going run, at most twice a second per run.
            #[zbus(signal)]
            #[allow(clippy::too_many_arguments)]
            pub async fn job_progress(
                emitter: &SignalEmitter<'_>,
                job: &str,
                run: i64,
                phase: &str,
                files: u64,
                bytes_read: u64,
                bytes_expected: u64,
            ) -> zbus::Result<()>;

            /// A run ended: its state (`succeeded`, `failed`, …) and error text (empty if none).
            #[zbus(signal)]
            pub async fn job_finished(
                emitter: &SignalEmitter<'_>,
                job: &str,
                run: i64,
                state: &str,
                error: &str,
            ) -> zbus::Result<()>;

            /// An alert was raised (`job` empty when it concerns no job).
            #[zbus(signal)]
            pub async fn alert_raised(
                emitter: &SignalEmitter<'_>,
                alert: &str,
                job: &str,
                message: &str,
            ) -> zbus::Result<()>;

            /// A job's 3-2-1-1-0 compliance changed.
            #[zbus(signal)]
            pub async fn compliance_changed(
                emitter: &SignalEmitter<'_>,
                job: &str,
                compliant: bool,
                reason: &str,
            ) -> zbus::Result<()>;
        }
    };
}

bms_proto::manager_methods!(dbus_interface);
