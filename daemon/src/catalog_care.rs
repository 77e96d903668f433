//! Daily care of the catalog (docs/operations.md, "A damaged catalog" and "Recovering the
//! catalog"): `PRAGMA integrity_check` once a day (the quick variant runs at every start, in
//! [`crate::catalog::Catalog::open`]), and an export of every target and job in the `bmsctl apply`
//! format next to the catalog, `catalog-config.toml` (mode 0600), written at start and daily.

use crate::state::SharedRef;
use bms_proto::api::{JobSpec, TargetSpec};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

const EVERY: Duration = Duration::from_secs(24 * 3600);

/// The name of the exported configuration in the state dir.
pub const EXPORT_FILE: &str = "catalog-config.toml";

/// On a new catalog, moves an export of an earlier catalog aside to
/// `catalog-config.<time>.toml`, so that the new catalog's export does not replace it: it is
/// what `bmsctl apply` needs to bring the lost jobs and targets back.
pub fn keep_previous_export(state_dir: &Path) {
    let old = state_dir.join(EXPORT_FILE);
    if !old.exists() {
        return;
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let kept = state_dir.join(format!("catalog-config.{stamp}.toml"));
    match std::fs::rename(&old, &kept) {
        Ok(()) => warn!(
            "new catalog: the configuration exported from the previous catalog is kept as {}; \
             `bmsctl apply {}` brings its targets and jobs back, then `bmsctl catalog rebuild`",
            kept.display(),
            kept.display()
        ),
        Err(e) => warn!(
            "new catalog: cannot move the previous export {} aside ({e}); copy it away before \
             bmsd's next export replaces it",
            old.display()
        ),
    }
}

pub async fn run(shared: SharedRef, cancel: CancellationToken) {
    let mut first = true;
    loop {
        // The first pass follows the quick check of the start-up; the full check runs daily.
        if !first {
            check(&shared).await;
        }
        first = false;
        export(&shared).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

async fn check(shared: &SharedRef) {
    match shared.catalog.call(|c| Ok(c.integrity_check())).await {
        Ok(Ok(())) => info!("catalog integrity check: ok"),
        Ok(Err(detail)) => error!(
            "catalog integrity check failed ({detail}): see docs/operations.md, \"A damaged catalog\""
        ),
        Err(e) => warn!("cannot run the catalog integrity check: {e}"),
    }
}

async fn export(shared: &SharedRef) {
    let path = shared.config().config.state_dir.join(EXPORT_FILE);
    let specs = shared
        .catalog
        .call(|c| {
            let targets = c.list_targets()?.into_iter().map(|t| t.spec).collect();
            let jobs = c.list_jobs()?.into_iter().map(|j| j.spec).collect();
            Ok((targets, jobs))
        })
        .await;
    let (targets, jobs): (Vec<TargetSpec>, Vec<JobSpec>) = match specs {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot export the configuration to {}: {e}", path.display());
            return;
        }
    };
    match write_export(&path, &targets, &jobs) {
        Ok(()) => info!(
            "exported {} target(s) and {} job(s) to {}",
            targets.len(),
            jobs.len(),
            path.display()
        ),
        Err(e) => warn!("cannot export the configuration to {}: {e}", path.display()),
    }
}

/// The export document: the `bmsctl apply` format.
pub fn render(targets: &[TargetSpec], jobs: &[JobSpec]) -> Result<String, String> {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        targets: &'a [TargetSpec],
        jobs: &'a [JobSpec],
    }
    let text = toml::to_string(&Doc { targets, jobs }).map_err(|e| e.to_string())?;
    Ok(format!(
        "# bms configuration exported by bmsd at {}; after a catalog loss load it with\n\
         # `bmsctl apply FILE` (docs/operations.md, \"A damaged catalog\")\n{text}",
        crate::catalog::now_rfc3339()
    ))
}

/// Writes the export through a temporary file (0600) and a rename, so a reader never sees half.
fn write_export(path: &Path, targets: &[TargetSpec], jobs: &[JobSpec]) -> Result<(), String> {
    let text = render(targets, jobs)?;
    let mut tmp = PathBuf::from(path);
    tmp.set_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| e.to_string())?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}
