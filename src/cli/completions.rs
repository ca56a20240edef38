//! `tuneflow completions SHELL` and `tuneflow man`: shell completions and a man page, both
//! generated from the same command-line definition as `--help`, so they cannot drift.

use clap::CommandFactory;

use super::{Cli, CompletionsArgs, Exit};

/// Prints the completion script for `args.shell`.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "tuneflow", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(Exit::Success)
}

/// Prints the man page (roff), e.g. `tuneflow man > tuneflow.1`.
pub fn man() -> anyhow::Result<Exit> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    out!("{}", String::from_utf8_lossy(&page));
    Ok(Exit::Success)
}
