//! WAL checkpoints, kept off the request path.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages:
//! with ~16 pages written per ask/tell round trip, one request in ~64 paid for copying the WAL
//! back into the database (`complete` p99 1.5–3 ms). The store turns it off and checkpoints
//! itself:
//!
//! - a WAL hook tells the store thread after each commit how many frames the WAL holds;
//! - every [`BACKGROUND_FRAMES`] new frames it wakes the checkpointer, a second thread with a
//!   connection of its own that runs `PRAGMA wal_checkpoint(PASSIVE)`: it copies frames back
//!   while the store thread goes on committing (a passive checkpoint never blocks writers);
//! - such a checkpoint cannot let the WAL start over while commits keep coming (the file is
//!   reused from its start only once every frame in it was copied back; without the next
//!   step a test's WAL grew past 100 MiB), so when the WAL holds [`CATCH_UP_FRAMES`] frames
//!   and no job is waiting (or twice as many in any case), the store thread checkpoints the
//!   few frames the checkpointer has not copied yet itself, and its next commit restarts the
//!   WAL. The WAL stays under ~35 MiB (~70 MiB when the store never idles);
//! - on a loaded machine the passive catch-up may find the checkpointer busy job after job, so
//!   at three times the catch-up mark the store thread waits for it and restarts the WAL
//!   (~100 MiB at most).
//!
//! Measured with `bench/ask-tell/run.sh` (one sequential client, 5,000 asks then completes
//! over http.client; 2 shared CPUs; p99 in ms):
//!
//! | checkpoints | ask | complete |
//! |---|---|---|
//! | SQLite's automatic one, inside commits (before) | 0.64–0.73 | 0.82–2.83 |
//! | on the store thread when idle, every 1,000 frames | 1.77–1.87 (the next ask waits) | 0.40–0.74 |
//! | in the background every 500 frames, catch-up at 4,000 | 0.46–0.64 | 0.34–0.64 |
//! | in the background every 1,000 frames, catch-up at 8,000 (kept) | 0.49–0.58 | 0.47–0.69 |

use std::ffi::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, MAIN_DB};

use super::thread::connect;
use crate::store::DriverError;

/// New WAL frames (pages) after which the checkpointer is woken.
pub(super) const BACKGROUND_FRAMES: i32 = 1000;

/// WAL frames after which the store thread, when idle, checkpoints what is left so that the
/// WAL starts over (at twice as many it does so even when jobs are waiting).
pub(super) const CATCH_UP_FRAMES: i32 = 8000;

/// The store thread's bookkeeping of the WAL.
pub(super) struct Checkpoints {
    /// Frames in the WAL after the last commit, from the WAL hook.
    frames: Arc<AtomicI32>,
    /// `frames` when the store thread last looked.
    seen: i32,
    /// `frames` when the checkpointer was last woken.
    requested_at: i32,
    /// `frames` at the store thread's last own checkpoint.
    caught_up_at: i32,
    checkpointer: Checkpointer,
    /// How often the checkpointer was woken.
    woken: u64,
    /// How many checkpoints the store thread ran itself.
    caught_up: u64,
}

impl std::fmt::Display for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "checkpointer woken {} times, {} catch-up checkpoints on the store thread",
            self.woken, self.caught_up
        )
    }
}

impl Checkpoints {
    /// Turns off SQLite's automatic checkpoints on `connection`, installs the WAL hook and
    /// starts the checkpointer on a connection of its own to `path`.
    pub(super) fn install(connection: &mut Connection, path: &Path) -> Result<Self, DriverError> {
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        let frames = Arc::new(AtomicI32::new(0));
        let hook_frames = Arc::clone(&frames);
        connection.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: c_int| {
            hook_frames.store(pages, Ordering::Relaxed);
            Ok(())
        }))?;
        Ok(Checkpoints {
            frames,
            seen: 0,
            requested_at: 0,
            caught_up_at: 0,
            checkpointer: Checkpointer::start(path)?,
            woken: 0,
            caught_up: 0,
        })
    }

    /// Called by the store thread after each job; `idle` when no other job is waiting.
    pub(super) fn after_job(&mut self, connection: &Connection, idle: bool) {
        let frames = self.frames.load(Ordering::Relaxed);
        if frames < self.seen {
            // The WAL started over.
            self.requested_at = 0;
            self.caught_up_at = 0;
        }
        self.seen = frames;
        if frames - self.requested_at >= BACKGROUND_FRAMES {
            self.checkpointer.wake();
            self.woken += 1;
            self.requested_at = frames;
        }
        let behind = frames - self.caught_up_at;
        if (idle && behind >= CATCH_UP_FRAMES) || behind >= 2 * CATCH_UP_FRAMES {
            // A passive checkpoint gives up at once when the checkpointer holds the lock; on a
            // loaded machine that can happen job after job while the WAL keeps growing. Past
            // three times the catch-up mark, wait for the lock (up to the busy timeout) and
            // have the next commit start the WAL over: a rare pause bounds the file.
            let mode = if behind >= 3 * CATCH_UP_FRAMES {
                CheckpointMode::RESTART
            } else {
                CheckpointMode::PASSIVE
            };
            match connection.wal_checkpoint_v2(Some(MAIN_DB), mode) {
                Ok(_) => {
                    self.caught_up += 1;
                    self.caught_up_at = frames;
                }
                // Busy: the checkpointer is at work; try again after the next job.
                Err(e) => tracing::debug!("store WAL checkpoint: {e}"),
            }
        }
    }
}

/// The checkpointer thread and its wake-up channel. Dropping it stops the thread and closes
/// its connection.
struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, DriverError> {
        let connection = connect(path)?;
        // One pending wake-up is enough: a checkpoint copies every frame there is.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("tuneflow-checkpoint".to_string())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(e) =
                        connection.wal_checkpoint_v2(Some(MAIN_DB), CheckpointMode::PASSIVE)
                    {
                        tracing::debug!("background WAL checkpoint: {e}");
                    }
                }
            })?;
        Ok(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    fn wake(&self) {
        if let Some(wake) = &self.wake {
            // Full: a checkpoint is pending already.
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
