//! `bmsctl repo ...`: offline commands on a repository path, without the daemon.

use crate::error::CliResult;

#[derive(Debug, clap::Subcommand)]
pub enum RepoCmd {}

pub fn run(cmd: &RepoCmd, _json: bool) -> CliResult {
    match *cmd {}
}
