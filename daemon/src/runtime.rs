//! The daemon's life: start-up (config, state dir lock, catalog, socket), readiness and watchdog
//! notifications, signals (SIGTERM/SIGINT stop, SIGHUP reloads), and graceful shutdown.

use crate::catalog::{now_rfc3339, Catalog, CatalogHandle};
use crate::cli::Args;
use crate::config::{Config, Overrides};
use crate::logging::{self, LogHandle};
use crate::state::{ConfigState, Shared, SharedRef};
use nix::fcntl::{Flock, FlockArg};
use sd_notify::NotifyState;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// In-flight requests get this long to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// Entry point used by main.rs.
pub fn main(args: Args) -> ExitCode {
    if args.print_manpage {
        return print_manpage();
    }
    bms_engine::fsutil::raise_open_file_limit();
    let overrides = Overrides {
        state_dir: args.state_dir.clone(),
        socket: args.socket.clone(),
        metrics_listen: args.metrics_listen.clone(),
        log_level: args.log_level.clone(),
        no_dbus: args.no_dbus,
    };
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bmsd: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check_config {
        println!(
            "configuration is valid ({})\nstate_dir = {}\nsocket = {}\nmetrics_listen = {}\nlog_level = {}\nmax_connections = {}\nmax_concurrent_runs = {}\nrun_history_days = {}\nmedia_wait_secs = {}\ndbus = {}\nalert channels: {}\nscheduled reports: {}",
            config.path.as_ref().map_or("embedded defaults".into(), |p| p.display().to_string()),
            config.state_dir.display(),
            config.socket.display(),
            config.metrics_listen,
            config.log_level,
            config.max_connections,
            config.max_concurrent_runs,
            config.run_history_days,
            config.media_wait_secs,
            config.dbus,
            config.alerts.summary(),
            crate::reports::config::summary(&config.reports)
        );
        return ExitCode::SUCCESS;
    }
    let log = logging::init(args.log_target, &config.log_level, args.log_level.is_some());
    // Before the async runtime starts its threads: taking the socket changes the environment.
    let activated = match crate::listen_fds::take(&config.socket) {
        Ok(l) => l,
        Err(e) => {
            error!("{e}");
            eprintln!("bmsd: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bmsd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let reload = ReloadSource {
        explicit: args.config,
        overrides,
    };
    let result = runtime.block_on(run(config, reload, log, activated));
    // Blocking work still going (a restore, a check on a dead mount) must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("bmsd: {e}");
            crate::notify::send(&[NotifyState::Status(&format!("failed: {e}"))]);
            ExitCode::from(1)
        }
    }
}

fn print_manpage() -> ExitCode {
    use clap::CommandFactory;
    let page = clap_mangen::Man::new(Args::command()).section("8");
    match page.render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bmsd: cannot write the man page: {e}");
            ExitCode::from(1)
        }
    }
}

/// What a reload reads again.
struct ReloadSource {
    explicit: Option<PathBuf>,
    overrides: Overrides,
}

/// Holds the state dir's lock for the daemon's lifetime.
struct StateLock {
    _lock: Flock<File>,
}

fn lock_state_dir(dir: &Path) -> Result<StateLock, String> {
    let path = dir.join("bmsd.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(file, _)| {
        let holder = fs::read_to_string(&path).unwrap_or_default();
        drop(file);
        format!(
            "another bmsd (pid {}) is already using state dir {}; stop it first or use another --state-dir",
            holder.trim(),
            dir.display()
        )
    })?;
    let _ = lock.set_len(0);
    let _ = writeln!(&mut *lock, "{}", std::process::id());
    Ok(StateLock { _lock: lock })
}

fn make_dir(dir: &Path, mode: u32) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))
}

/// Creates the state dir, or restricts an existing one, to mode 0700: it holds the catalog and
/// the default repository, which are private to the daemon's user (docs/repository-format.md
/// "Permissions").
fn private_state_dir(dir: &Path) -> Result<(), String> {
    make_dir(dir, 0o700)?;
    restrict(dir, 0o700)
}

/// Sets `path` to `mode` if group or others have any access to it (the umask does not decide).
fn restrict(path: &Path, mode: u32) -> Result<(), String> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    let old = meta.permissions().mode() & 0o7777;
    if old & 0o077 == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| {
        format!(
            "cannot restrict {} to mode {mode:04o}: {e}; run `chmod {mode:o} {}` as its owner",
            path.display(),
            path.display()
        )
    })?;
    warn!(
        "restricted {} from mode {old:04o} to {mode:04o}: it is private to bmsd's user",
        path.display()
    );
    Ok(())
}

/// Makes the catalog's files private (0600) before SQLite opens them: the database is created
/// here with that mode, and SQLite gives its -wal and -shm files the database's mode.
fn private_catalog_files(db: &Path) -> Result<(), String> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(db)
        .map_err(|e| format!("cannot create catalog {}: {e}", db.display()))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        restrict(Path::new(&p), 0o600)?;
    }
    Ok(())
}

/// Binds the control socket, replacing a stale socket file but never a live daemon's.
fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    if let Some(parent) = path.parent() {
        make_dir(parent, 0o755)?;
    }
    if let Ok(meta) = fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(format!(
                "{} exists and is not a socket; bmsd will not replace it: choose another --socket",
                path.display()
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another process is serving on socket {}; stop it or use another --socket",
                path.display()
            ));
        }
        fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))?;
    socket_permissions(path)?;
    Ok(listener)
}

/// The control socket as socket activation passed it (docs/operations.md, "Socket activation").
fn adopt_socket(
    listener: std::os::unix::net::UnixListener,
    path: &Path,
) -> Result<UnixListener, String> {
    let listener = UnixListener::from_std(listener)
        .map_err(|e| format!("cannot use the control socket passed by socket activation: {e}"))?;
    socket_permissions(path)?;
    info!(socket = %path.display(), "control socket passed by socket activation");
    Ok(listener)
}

/// Mode 0660, group bms, and group bms-admin through an ACL (docs/operations.md).
fn socket_permissions(path: &Path) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set permissions on {}: {e}", path.display()))?;
    if nix::unistd::geteuid().is_root() {
        if let Ok(Some(group)) = nix::unistd::Group::from_name(crate::ipc::auth::READ_GROUP) {
            nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(group.gid))
                .map_err(|e| format!("cannot give socket {} to group bms: {e}", path.display()))?;
        }
        if let Err(e) = crate::ipc::auth::grant_admin_group(path) {
            warn!("{e}");
        }
    }
    Ok(())
}

fn notify(states: &[NotifyState<'_>]) {
    crate::notify::send(states);
}

async fn run(
    config: Config,
    reload: ReloadSource,
    log: LogHandle,
    activated: Option<std::os::unix::net::UnixListener>,
) -> Result<(), String> {
    let socket_activated = activated.is_some();
    private_state_dir(&config.state_dir)?;
    crate::targets::set_keys_dir(config.keys_dir());
    let _lock = lock_state_dir(&config.state_dir)?;
    crate::runner::execute_drill::clear_scratch(&config.state_dir);
    let db = config.state_dir.join("catalog.db");
    private_catalog_files(&db)?;
    let mut catalog = Catalog::open(&db).map_err(|e| e.to_string())?;
    let local_repo = config.state_dir.join("repos").join("local");
    if catalog
        .ensure_default_target(&local_repo)
        .map_err(|e| e.to_string())?
    {
        make_dir(&local_repo, 0o700)?;
        info!(
            "new catalog {}: created default disk target 'local' at {}",
            db.display(),
            local_repo.display()
        );
        // A new catalog next to an old state dir: keep the old declaration and take back what
        // the repositories it knows hold (docs/operations.md "Recovering the catalog").
        crate::catalog_care::keep_previous_export(&config.state_dir);
        if let Err(e) = crate::catalog_rebuild::rebuild_at_start(&mut catalog) {
            warn!("cannot rebuild the new catalog from the repositories: {e}");
        }
    }
    let interrupted = catalog.interrupt_unfinished().map_err(|e| e.to_string())?;
    // Counters start from the runs the catalog holds (docs/metrics.md).
    let run_counts = match catalog.facts() {
        Ok(f) => f.run_counts,
        Err(e) => {
            warn!("cannot count the recorded runs: {e}; bms_runs_total counts from zero");
            Vec::new()
        }
    };
    if !interrupted.is_empty() {
        warn!(runs = ?interrupted, "runs left unfinished by a previous bmsd are recorded as interrupted");
        crate::runner::hook_groups::reap_leftovers(&mut catalog, &interrupted);
        recover_locks(&catalog, &interrupted);
    }
    let (catalog, catalog_thread) =
        CatalogHandle::spawn(catalog).map_err(|e| format!("cannot start catalog thread: {e}"))?;
    let listener = match activated {
        Some(l) => adopt_socket(l, &config.socket)?,
        None => bind_socket(&config.socket)?,
    };
    let effective = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.is_empty() && reload.overrides.log_level.is_none())
        .unwrap_or_else(|| config.log_level.clone());
    let shared = Shared::new(
        catalog,
        ConfigState {
            config: config.clone(),
            generation: 1,
            loaded_at: now_rfc3339(),
            effective_log_level: effective,
        },
    );
    shared.events.counters.seed(&run_counts);
    let runner = crate::runner::Runner::new(shared.clone());
    let cancel = shared.shutdown.clone();
    let tracker = TaskTracker::new();
    tracker.spawn(crate::ipc::serve(
        listener,
        runner.clone(),
        config.max_connections,
        cancel.clone(),
        tracker.clone(),
    ));
    match tokio::net::TcpListener::bind(config.metrics_listen).await {
        Ok(l) => {
            if let Ok(addr) = l.local_addr() {
                let _ = shared.metrics_address.set(addr);
                info!("metrics on http://{addr}/metrics");
            }
            tracker.spawn(crate::metrics_http::serve(l, runner.clone(), cancel.clone()));
        }
        Err(e) => warn!(
            "cannot listen for metrics on {}: {e}; bmsd runs without its metrics endpoint (set metrics_listen)",
            config.metrics_listen
        ),
    }
    tracker.spawn(crate::runner::dispatch_loop(
        runner.clone(),
        cancel.clone(),
        tracker.clone(),
    ));
    tracker.spawn(crate::scheduler::run(runner.clone(), cancel.clone()));
    tracker.spawn(crate::history::run(shared.clone(), cancel.clone()));
    tracker.spawn(crate::compliance::watch::run(
        shared.clone(),
        cancel.clone(),
    ));
    tracker.spawn(crate::catalog_care::run(shared.clone(), cancel.clone()));
    tracker.spawn(crate::immutability::run(shared.clone(), cancel.clone()));
    crate::alerts::spawn(&shared, &cancel, &tracker);
    tracker.spawn(crate::reports::run(shared.clone(), cancel.clone()));
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    if let Some(interval) = sd_notify::watchdog_enabled() {
        let cancel = cancel.clone();
        tracker.spawn(watchdog(interval / 2, shared.clone(), cancel));
    }
    // READY=1 waits for the bus name when D-Bus is on (docs/dbus.md).
    let _dbus = crate::dbus::start(runner.clone(), config.dbus, &tracker).await;
    info!(socket = %config.socket.display(), state_dir = %config.state_dir.display(), "bmsd {} ready", bms_proto::VERSION);
    notify(&[NotifyState::Ready, NotifyState::Status("ready: idle")]);
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => reload_config(&reload, &runner, &log),
        }
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("some requests did not finish within {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    // An activated socket belongs to bmsd.socket, which keeps listening for the next start.
    if !socket_activated {
        let _ = fs::remove_file(&config.socket);
    }
    // A clean stop leaves the catalog whole in catalog.db (docs/operations.md).
    match shared.catalog.call(|c| c.checkpoint()).await {
        Ok(()) => info!("catalog checkpointed"),
        Err(e) => warn!("cannot checkpoint the catalog at shutdown: {e}"),
    }
    drop(shared);
    drop(catalog_thread);
    info!("bmsd stopped");
    Ok(())
}

/// Removes the repository locks that interrupted runs left behind (their holder is dead).
fn recover_locks(catalog: &Catalog, runs: &[i64]) {
    let mut targets = std::collections::BTreeMap::new();
    for id in runs {
        let target = catalog.get_run(*id).ok().and_then(|r| r.target);
        let target = target.and_then(|t| catalog.get_target(&t).ok());
        if let Some(t) = target.and_then(|t| crate::targets::Target::from_spec(&t.spec).ok()) {
            if let Some(dir) = t.dir().map(PathBuf::from) {
                targets.insert(dir, t);
            }
        }
    }
    for (path, target) in targets
        .into_iter()
        .filter(|(p, _)| p.join("config").exists())
    {
        // Lock files of an encrypted repository are sealed: they are read through the store the
        // target's key opens.
        let repo = match crate::targets::open_target(&target, crate::targets::Purpose::Verify) {
            Ok(r) => r,
            Err(e) => {
                info!(repo = %path.display(), "lock recovery skipped: {e}");
                continue;
            }
        };
        // An exclusive lock conflicts with every other lock, so acquiring it inspects them all and
        // removes those whose holder is dead; a live holder only makes this attempt fail.
        match bms_engine::lock::acquire_in(
            repo.store().clone(),
            bms_engine::lock::LockKind::Exclusive,
            "stale lock recovery",
            Duration::ZERO,
            &std::sync::atomic::AtomicBool::new(false),
        ) {
            Ok(lock) => {
                for r in &lock.recovered {
                    warn!(repo = %path.display(), "recovered stale lock: {r}");
                }
            }
            Err(e) => info!(repo = %path.display(), "lock recovery skipped: {e}"),
        }
    }
}

async fn watchdog(every: Duration, shared: SharedRef, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                // The catalog thread answering proves the daemon is not wedged.
                if shared.catalog.call(|c| c.schema_version()).await.is_ok() {
                    notify(&[NotifyState::Watchdog]);
                } else {
                    warn!("watchdog: the catalog does not answer; not petting the watchdog");
                }
            }
        }
    }
}

fn reload_config(src: &ReloadSource, runner: &crate::runner::Runner, log: &LogHandle) {
    let shared = &runner.shared;
    let old = shared.config();
    let mut new = match Config::load(
        src.explicit.as_deref().or(old.config.path.as_deref()),
        &src.overrides,
    ) {
        Ok(c) => c,
        Err(e) => {
            error!("SIGHUP: new configuration rejected, keeping the previous one: {e}");
            notify(&[NotifyState::Status(
                "ready: config reload failed, previous config kept",
            )]);
            return;
        }
    };
    for (what, changed) in [
        ("state_dir", new.state_dir != old.config.state_dir),
        ("socket", new.socket != old.config.socket),
        (
            "max_connections",
            new.max_connections != old.config.max_connections,
        ),
        (
            "metrics_listen",
            new.metrics_listen != old.config.metrics_listen,
        ),
    ] {
        if changed {
            warn!("SIGHUP: {what} changed; it takes effect when bmsd restarts");
        }
    }
    new.state_dir = old.config.state_dir.clone();
    new.socket = old.config.socket.clone();
    new.max_connections = old.config.max_connections;
    new.metrics_listen = old.config.metrics_listen;
    if let Err(e) = log.set_level(&new.log_level) {
        error!("SIGHUP: cannot apply log_level: {e}");
    }
    let effective = if log.is_pinned() {
        old.effective_log_level.clone()
    } else {
        new.log_level.clone()
    };
    let generation = old.generation + 1;
    shared.set_config(ConfigState {
        config: new,
        generation,
        loaded_at: now_rfc3339(),
        effective_log_level: effective,
    });
    runner.poke();
    info!(generation, "SIGHUP: configuration reloaded");
    notify(&[NotifyState::Status("ready: configuration reloaded")]);
}
