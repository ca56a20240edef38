//! The store thread: the one OS thread that owns the SQLite connection.
//!
//! Every store operation is one job: a closure that runs its statements on the connection.
//! The async side sends the job over a channel and awaits the answer on a oneshot channel, so
//! an operation costs one hand-off between threads however many statements it runs. The
//! thread runs each job in a transaction of its own (`BEGIN IMMEDIATE` for writes, so a
//! write never fails half-way on another process's lock, and a deferred one for reads, so a
//! read sees one snapshot) and commits it only if the job returned `Ok`; a job that fails or
//! panics is rolled back whole.
//!
//! Between jobs the thread looks after the WAL (`checkpoint.rs`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use super::checkpoint::Checkpoints;
use super::migrate;
use crate::store::{DriverError, StoreError};

/// How long a statement waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection: every fixed statement of the store, and the
/// multi-row inserts of small observation batches.
const STATEMENT_CACHE: usize = 64;

/// What a job does to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Reads only: a deferred transaction.
    Read,
    /// Writes: an immediate transaction, holding the write lock from its start.
    Write,
}

/// A job as the thread sees it: it runs its work and answers its caller itself.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The handle to the store thread. Dropping it lets the thread finish the jobs sent so far,
/// then waits for it to close the database.
#[derive(Debug)]
pub(super) struct StoreThread {
    jobs: Option<Sender<Job>>,
    /// Jobs sent and not yet taken by the thread.
    waiting: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl StoreThread {
    /// Starts the thread: it opens the database at `path` (creating it and its directory
    /// when missing) and applies the migrations before this returns.
    pub(super) async fn start(path: &Path) -> Result<StoreThread, StoreError> {
        let location = path.display().to_string();
        let (jobs, receiver) = mpsc::channel::<Job>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let (opened, open_result) = oneshot::channel();
        let path = path.to_path_buf();
        let thread_waiting = Arc::clone(&waiting);
        let thread = std::thread::Builder::new()
            .name("tuneflow-store".to_string())
            .spawn(move || match Worker::open(path) {
                Ok(worker) => {
                    if opened.send(Ok(())).is_ok() {
                        worker.serve(receiver, &thread_waiting);
                    }
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                }
            })
            .map_err(|e| StoreError::Open {
                location: location.clone(),
                source: Box::new(e),
            })?;
        match open_result.await {
            Ok(Ok(())) => Ok(StoreThread {
                jobs: Some(jobs),
                waiting,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Open {
                location,
                source: "the store thread stopped while opening the database".into(),
            }),
        }
    }

    /// Runs `work` on the store thread in a transaction of its own (see [`Access`]) and
    /// returns its result once the transaction is committed, or rolled back on an error.
    pub(super) async fn call<R, F>(&self, access: Access, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |connection: &mut Connection| {
            let _ = answer.send(in_transaction(connection, access, work));
        });
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if self
            .jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .is_none()
        {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Closed("its thread has stopped".to_string()));
        }
        answered.await.map_err(|_| {
            StoreError::Closed(
                "its thread stopped or failed while running the operation, which was rolled back"
                    .to_string(),
            )
        })?
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store thread panicked");
        }
    }
}

/// Runs `work` in a transaction and commits it if `work` succeeded; rolls back otherwise
/// (dropping an uncommitted transaction rolls it back).
fn in_transaction<R>(
    connection: &mut Connection,
    access: Access,
    work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let behavior = match access {
        Access::Read => TransactionBehavior::Deferred,
        Access::Write => TransactionBehavior::Immediate,
    };
    let transaction = connection.transaction_with_behavior(behavior)?;
    let value = work(&transaction)?;
    transaction.commit()?;
    Ok(value)
}

/// Opens a connection to the store with the settings every connection uses: WAL journal,
/// `synchronous=NORMAL` (a commit is durable against a crash of the process, and the WAL is
/// synced at checkpoints), foreign keys enforced, [`BUSY_TIMEOUT`].
pub(super) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    let _mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

/// What the store thread owns.
struct Worker {
    connection: Connection,
    checkpoints: Checkpoints,
    /// Jobs run so far.
    jobs: u64,
    /// The most jobs there were in the channel at once (counting the one taken).
    deepest: usize,
}

impl Worker {
    fn open(path: PathBuf) -> Result<Worker, StoreError> {
        let location = path.display().to_string();
        let failed = |source: DriverError| StoreError::Open {
            location: location.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| failed(Box::new(e)))?;
        }
        let mut connection = connect(&path).map_err(|e| failed(Box::new(e)))?;
        migrate::migrate(&mut connection)?;
        let checkpoints = Checkpoints::install(&mut connection, &path).map_err(failed)?;
        Ok(Worker {
            connection,
            checkpoints,
            jobs: 0,
            deepest: 0,
        })
    }

    /// Runs jobs until every sender is gone; between them, when no job waits, checkpoints.
    fn serve(mut self, jobs: Receiver<Job>, waiting: &AtomicUsize) {
        let mut next = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            self.deepest = self.deepest.max(waiting.fetch_sub(1, Ordering::Relaxed));
            self.run(job);
            match jobs.try_recv() {
                Ok(job) => {
                    self.checkpoints.after_job(&self.connection, false);
                    next = Some(job);
                }
                Err(TryRecvError::Empty) => self.checkpoints.after_job(&self.connection, true),
                Err(TryRecvError::Disconnected) => break,
            }
        }
        tracing::debug!(
            jobs = self.jobs,
            deepest_queue = self.deepest,
            checkpoints = %self.checkpoints,
            "store thread closing the database"
        );
        // The checkpointer's connection closes first, so that closing the store's connection,
        // the last one, checkpoints what is left and removes the WAL.
        drop(self.checkpoints);
        drop(self.connection);
    }

    fn run(&mut self, job: Job) {
        self.jobs += 1;
        let connection = &mut self.connection;
        if catch_unwind(AssertUnwindSafe(|| job(connection))).is_err() {
            tracing::error!("a store operation panicked; it was rolled back");
            if !self.connection.is_autocommit() {
                let _ = self.connection.execute_batch("ROLLBACK");
            }
        }
    }
}
