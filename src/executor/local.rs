//! The local executor: one child process per trial, in a process group of its own.
//!
//! Invariants:
//! - The command runs directly (argv, no shell), with stdin closed.
//! - The child leads a new process group, so a timeout or cancellation kills everything it
//!   started (grandchildren included) with one `killpg`: SIGTERM, a short grace period, then
//!   SIGKILL. When the child exits on its own, whatever it left behind in its group is killed
//!   too, so no trial outlives its record.
//! - stdout and stderr are read concurrently (a child that fills one pipe never blocks), line
//!   by line with a cap on line length, appended to the trial's log file (capped in size), and
//!   forwarded to the engine. A slow consumer slows the child down (back-pressure) instead of
//!   growing memory.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Executor, ExecutorEvent, TrialExit, TrialJob};
use crate::collector::MAX_LINE_BYTES;

/// How long a trial may take to exit after SIGTERM before its group gets SIGKILL.
pub const TERMINATION_GRACE: Duration = Duration::from_secs(2);

/// Largest log file kept per trial; output past it is still parsed, not written.
pub const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// How long to wait for the output pipes to close after the process group is gone.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Runs trials as local child processes.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor;

#[async_trait]
impl Executor for LocalExecutor {
    async fn run(
        &self,
        job: TrialJob,
        events: mpsc::Sender<ExecutorEvent>,
        cancel: CancellationToken,
    ) -> TrialExit {
        let Some((program, args)) = job.command.split_first() else {
            return TrialExit::SpawnFailed("the trial command is empty".to_string());
        };
        if !job.working_dir.is_dir() {
            return TrialExit::SpawnFailed(format!(
                "working directory {} does not exist",
                job.working_dir.display()
            ));
        }
        let log = match open_log(&job.log_path).await {
            Ok(log) => log,
            Err(e) => {
                return TrialExit::SpawnFailed(format!(
                    "cannot create log file {}: {e}",
                    job.log_path.display()
                ));
            }
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&job.working_dir)
            .envs(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TUNEFLOW_EXPERIMENT", &job.experiment)
            .env("TUNEFLOW_TRIAL_NAME", &job.trial_name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return TrialExit::SpawnFailed(spawn_error(program, &job, &e)),
        };
        let Some(pid) = child.id() else {
            return TrialExit::SpawnFailed("the process exited before it could be tracked".into());
        };
        let _ = events
            .send(ExecutorEvent::Started {
                handle: pid.to_string(),
            })
            .await;

        let (lines_tx, lines_rx) = mpsc::channel::<Vec<u8>>(1024);
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(read_lines(stdout, lines_tx.clone())));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(read_lines(stderr, lines_tx.clone())));
        }
        drop(lines_tx);
        let writer = tokio::spawn(forward_lines(lines_rx, log, events));

        let exit = wait(&mut child, pid, job.timeout, &cancel).await;
        // Whatever the child left running in its group goes with it.
        signal_group(pid, Signal::SIGKILL);
        let drained = tokio::time::timeout(DRAIN_LIMIT, async {
            for reader in readers {
                let _ = reader.await;
            }
            let _ = writer.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                trial = %job.trial_name,
                "output pipes still open {DRAIN_LIMIT:?} after the trial ended; a process left its group"
            );
        }
        exit
    }

    async fn stop_orphan(&self, experiment: &str, trial_name: &str, handle: &str) -> usize {
        let Ok(group) = handle.parse::<i32>() else {
            return 0;
        };
        let marks = [
            format!("TUNEFLOW_EXPERIMENT={experiment}"),
            format!("TUNEFLOW_TRIAL_NAME={trial_name}"),
        ];
        let orphans = tokio::task::spawn_blocking(move || group_members(group, &marks))
            .await
            .unwrap_or_default();
        for pid in &orphans {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        orphans.len()
    }
}

/// The processes of process group `group` whose environment carries every one of `marks`:
/// the trial's own processes, and never an unrelated process that reused the id.
fn group_members(group: i32, marks: &[String]) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_group(*pid) == Some(group))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
                marks.iter().all(|mark| vars.contains(&mark.as_bytes()))
            })
        })
        .collect()
}

/// The process group of `pid`, from `/proc/PID/stat` (the field after state and parent).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Waits for the child, enforcing the timeout and cancellation.
async fn wait(
    child: &mut Child,
    pid: u32,
    timeout: Option<Duration>,
    cancel: &CancellationToken,
) -> TrialExit {
    let deadline = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        status = child.wait() => exit_of(status),
        () = deadline => {
            terminate(child, pid).await;
            TrialExit::TimedOut(timeout.unwrap_or_default())
        }
        () = cancel.cancelled() => {
            terminate(child, pid).await;
            TrialExit::Cancelled
        }
    }
}

fn exit_of(status: std::io::Result<ExitStatus>) -> TrialExit {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => TrialExit::Exited(code),
            (None, Some(signal)) => TrialExit::Signaled(signal),
            (None, None) => TrialExit::Exited(-1),
        },
        Err(e) => TrialExit::SpawnFailed(format!("cannot wait for the trial process: {e}")),
    }
}

/// SIGTERM to the group, SIGKILL after [`TERMINATION_GRACE`].
async fn terminate(child: &mut Child, pid: u32) {
    signal_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(TERMINATION_GRACE, child.wait())
        .await
        .is_err()
    {
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Sends `signal` to the process group led by `pid`; a group that is gone already is fine.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(raw), signal);
    }
}

fn spawn_error(program: &str, job: &TrialJob, error: &std::io::Error) -> String {
    let mut message = format!("cannot start `{program}`: {error}");
    if error.kind() == std::io::ErrorKind::NotFound {
        if program.contains('/') {
            message.push_str(&format!(
                " (relative paths are resolved from the working directory {})",
                job.working_dir.display()
            ));
        } else {
            message.push_str(" (not found on PATH)");
        }
    }
    message
}

pub(super) async fn open_log(path: &Path) -> std::io::Result<BufWriter<tokio::fs::File>> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    Ok(BufWriter::new(file))
}

/// Reads `reader` line by line, each line cut to [`MAX_LINE_BYTES`] (the rest of an overlong
/// line is skipped), and sends the lines on.
async fn read_lines<R: AsyncRead + Unpin>(reader: R, lines: mpsc::Sender<Vec<u8>>) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    loop {
        let (consumed, complete) = match reader.fill_buf().await {
            Ok([]) => break,
            Ok(buffer) => super::take_line(buffer, &mut line, MAX_LINE_BYTES),
            Err(_) => break,
        };
        reader.consume(consumed);
        if complete && lines.send(std::mem::take(&mut line)).await.is_err() {
            return;
        }
    }
    if !line.is_empty() {
        let _ = lines.send(line).await;
    }
}

/// Appends every line to the log (up to [`MAX_LOG_BYTES`]), written out whenever no more
/// lines wait, and forwards it to the engine.
pub(super) async fn forward_lines(
    mut lines: mpsc::Receiver<Vec<u8>>,
    mut log: BufWriter<tokio::fs::File>,
    events: mpsc::Sender<ExecutorEvent>,
) {
    let mut written: u64 = 0;
    let mut log_ok = true;
    while let Some(mut line) = lines.recv().await {
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        if log_ok {
            if written + line.len() as u64 <= MAX_LOG_BYTES {
                log_ok = log.write_all(&line).await.is_ok();
                written += line.len() as u64;
            } else {
                let _ = log
                    .write_all(b"[tuneflow: log limit reached; further output is not kept]\n")
                    .await;
                log_ok = false;
            }
        }
        if log_ok && lines.is_empty() {
            // Nothing more is waiting: write the buffer out, so that the log can be read
            // while the trial runs (the dashboard, `tail -f`). A trial that floods its
            // output keeps the queue full and is written in whole buffers.
            log_ok = log.flush().await.is_ok();
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        // The engine may have stopped listening (trial being cancelled); keep draining.
        let _ = events.send(ExecutorEvent::Line(text)).await;
    }
    let _ = log.flush().await;
}
