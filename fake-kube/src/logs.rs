//! Container logs: lines appended by tests or the Job simulation, read (and followed) through
//! `GET /api/v1/namespaces/{ns}/pods/{pod}/log`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::lock;

/// One container's log.
pub(crate) struct LogBuf {
    data: Mutex<LogData>,
    tx: watch::Sender<u64>,
}

#[derive(Default)]
struct LogData {
    lines: Vec<(DateTime<Utc>, String)>,
    ended: bool,
}

impl LogBuf {
    fn new() -> Self {
        LogBuf {
            data: Mutex::new(LogData::default()),
            tx: watch::channel(0).0,
        }
    }

    fn bump(&self) {
        self.tx.send_modify(|n| *n += 1);
    }

    /// Lines from index `from` on (with their times) and whether the log has ended.
    pub fn read_from(&self, from: usize) -> (Vec<(DateTime<Utc>, String)>, bool) {
        let d = lock(&self.data);
        (
            d.lines.get(from..).map(<[_]>::to_vec).unwrap_or_default(),
            d.ended,
        )
    }

    /// A receiver that changes whenever a line is appended or the log ends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// A pod's container logs by container name.
type PodLogs = HashMap<String, Arc<LogBuf>>;

/// Every container log, keyed by (namespace, pod), then container.
#[derive(Default)]
pub(crate) struct Logs {
    map: Mutex<HashMap<(String, String), PodLogs>>,
}

impl Logs {
    /// The log of a container, created empty when missing.
    pub fn buf(&self, ns: &str, pod: &str, container: &str) -> Arc<LogBuf> {
        lock(&self.map)
            .entry((ns.to_string(), pod.to_string()))
            .or_default()
            .entry(container.to_string())
            .or_insert_with(|| Arc::new(LogBuf::new()))
            .clone()
    }

    /// Appends a line (a trailing newline is not needed) unless the log has ended.
    pub fn append(&self, ns: &str, pod: &str, container: &str, line: &str) {
        let buf = self.buf(ns, pod, container);
        {
            let mut d = lock(&buf.data);
            if d.ended {
                return;
            }
            for l in line.trim_end_matches('\n').split('\n') {
                d.lines.push((Utc::now(), l.to_string()));
            }
        }
        buf.bump();
    }

    /// Ends a log: followers get the rest and then the stream closes.
    pub fn end(&self, ns: &str, pod: &str, container: &str) {
        let buf = self.buf(ns, pod, container);
        lock(&buf.data).ended = true;
        buf.bump();
    }

    /// Ends and forgets every log of a pod (the pod was deleted).
    pub fn drop_pod(&self, ns: &str, pod: &str) {
        let bufs = lock(&self.map).remove(&(ns.to_string(), pod.to_string()));
        for buf in bufs.into_iter().flat_map(HashMap::into_values) {
            lock(&buf.data).ended = true;
            buf.bump();
        }
    }
}
