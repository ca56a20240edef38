//! `tuneflow logs EXP TRIAL [-f]`: a trial's log, as the executor wrote it (the process's
//! output, or for a Kubernetes trial the copy of its primary container's log), read from the
//! logs directory beside the store.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::Context;

use super::query::open_store;
use super::{Exit, LogsArgs};
use crate::engine::{Engine, log_tail};
use crate::store::{StoreError, StoreLocation};

/// How often `--follow` looks for new output and for the trial's end.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Prints (and with `--follow`, follows) a trial's log.
pub async fn logs(store_url: &str, args: LogsArgs) -> anyhow::Result<Exit> {
    let location = StoreLocation::parse(store_url)?;
    let store = open_store(store_url).await?;
    let experiment = store
        .experiment(&args.experiment)
        .await?
        .ok_or_else(|| StoreError::NotFound(args.experiment.clone()))?;
    let trial = store
        .trial(experiment.id, &args.trial)
        .await?
        .with_context(|| {
            format!(
                "experiment `{}` has no trial named `{}` (`tuneflow trials {}` lists them)",
                experiment.name, args.trial, experiment.name
            )
        })?;
    let path = Engine::log_path(&location.logs_dir(), &experiment.name, &trial.name);
    if args.follow && !trial.state.is_final() && !path.exists() {
        // Followed before it started: its log appears when it does.
        errln!("waiting for trial `{}` to start...", trial.name);
    }
    let waiting = args.follow && !trial.state.is_final();
    let mut offset = match args.tail {
        _ if waiting && !path.exists() => 0,
        Some(lines) => {
            let (lines, _) = log_tail(&path, lines).map_err(|e| missing(&path, &trial.name, e))?;
            lines.iter().for_each(|line| outln!("{line}"));
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        }
        None => copy_from(&path, 0).map_err(|e| missing(&path, &trial.name, e))?,
    };
    if !args.follow {
        return Ok(Exit::Success);
    }
    // Until the trial is final and its log has nothing more.
    loop {
        let finished = store
            .trial(experiment.id, &trial.name)
            .await?
            .is_none_or(|t| t.state.is_final());
        let before = offset;
        offset = copy_from(&path, offset).unwrap_or(offset);
        if finished && offset == before {
            return Ok(Exit::Success);
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// Writes the log from byte `offset` to stdout; returns the offset reached.
fn copy_from(path: &std::path::Path, offset: u64) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    // A log that was truncated (a trial run again from the start) is read anew.
    let offset = if size < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&bytes);
    let _ = stdout.flush();
    Ok(offset + bytes.len() as u64)
}

/// The error for a log that cannot be read.
fn missing(path: &std::path::Path, trial: &str, error: std::io::Error) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "trial `{trial}` has no log here (looked for {}): client-driven trials keep their own, and a trial run on another machine keeps it there",
            path.display()
        )
    } else {
        anyhow::anyhow!("cannot read {}: {error}", path.display())
    }
}
