//! Shell completions and man pages, generated from the clap definition.

use crate::cli::command;
use crate::error::{CliError, CliResult};
use std::path::Path;

pub fn completions(shell: clap_complete::Shell) -> CliResult {
    let mut cmd = command();
    clap_complete::generate(shell, &mut cmd, "bmsctl", &mut std::io::stdout());
    Ok(())
}

/// Writes bmsctl.1 and one page per subcommand (bmsctl-target.1, bmsctl-target-add.1, ...).
pub fn manpages(dir: &Path) -> CliResult {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    clap_mangen::generate_to(command(), dir)
        .map_err(|e| CliError::failure(format!("cannot write man pages to {}: {e}", dir.display())))
}
