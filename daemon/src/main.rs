use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    bmsd::runtime::main(bmsd::cli::Args::parse())
}
