//! Printing: tables for people, JSON for scripts, errors with hints on stderr.

use std::io::Write;

use comfy_table::{Table, presets};
use serde::Serialize;

/// Output format of data commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// A table with a header row, in the plain style of `kubectl get`.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(header);
    table
}

/// Prints `value` as pretty JSON on stdout. A reader that went away (`| head`) is no error.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout));
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Prints a table (trimmed of the preset's padding) on stdout.
pub fn print_table(table: &Table) {
    for line in table.to_string().lines() {
        outln!("{}", line.trim_end());
    }
}

/// Prints an error and its causes on stderr, with a hint when one helps.
pub fn error(error: &anyhow::Error) {
    let mut text = format!("error: {error}");
    for cause in error.chain().skip(1) {
        // Errors that quote their cause (`cannot open store X: <cause>`) already said it.
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!(": {cause}"));
        }
    }
    errln!("{text}");
    if let Some(hint) = hint_for(&text) {
        errln!("hint: {hint}");
    }
}

fn hint_for(text: &str) -> Option<&'static str> {
    if text.contains("readonly") || text.contains("read-only") || text.contains("Permission denied")
    {
        Some(
            "the store file or its directory is not writable; fix its permissions or pass --store PATH",
        )
    } else if text.contains("database is locked") {
        Some("another process holds a lock on the store; wait for it or use another --store")
    } else if text.contains("no experiment named") {
        Some("`tuneflow experiments` lists the experiments in this store (see --store)")
    } else if text.contains("being run by another process") {
        Some("wait for that run to finish or stop it; a run holds its experiment until it exits")
    } else if text.contains("with a different") {
        Some(
            "pass --fresh to discard the stored experiment and start over, or change metadata.name",
        )
    } else {
        None
    }
}
