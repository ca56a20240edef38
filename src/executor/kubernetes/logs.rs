//! Following the primary container's log through the API (`pods/log?follow=true`), with no
//! sidecar in the pod.
//!
//! The log is requested with timestamps. Each line's timestamp is stripped before the line is
//! passed on; it is kept as a cursor so that a stream that ends while the container still runs
//! (a dropped connection, an API server restart) resumes with `sinceTime` without repeating a
//! line: lines older than the last one seen are skipped, and of the lines that share its
//! timestamp, as many as were already delivered.

use std::time::Duration;

use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::{mpsc, watch};

use crate::collector::MAX_LINE_BYTES;

/// Room for the timestamp the API server puts before each line (`2006-01-02T15:04:05.999999999Z `).
const TIMESTAMP_ROOM: usize = 64;
/// First wait before reconnecting a log stream; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between reconnections.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// Reconnections tried after the container is known to have ended, for the lines a dropped
/// stream may have missed.
const FINAL_ATTEMPTS: u32 = 3;

/// Where a log stream stopped, so that the next one starts after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The timestamp of the last line delivered.
    last: Option<Timestamp>,
    /// How many delivered lines carry that timestamp.
    at_last: usize,
    /// Lines stamped `last` still to skip in the current stream (already delivered by the
    /// previous one).
    replay: usize,
}

impl Cursor {
    /// The `sinceTime` for a new stream: the last timestamp, down to the second (the API
    /// takes whole seconds; rounding up could skip lines).
    pub fn since(&self) -> Option<Timestamp> {
        self.last
            .and_then(|t| Timestamp::from_second(t.as_second()).ok())
    }

    /// A new stream starts: it repeats the lines stamped at or after [`Cursor::since`].
    pub fn restart(&mut self) {
        self.replay = self.at_last;
    }

    /// Whether a line stamped `stamp` is new (and records it if so). Lines without a
    /// timestamp cannot be matched and are always passed on.
    pub fn admit(&mut self, stamp: Option<Timestamp>) -> bool {
        let Some(stamp) = stamp else {
            return true;
        };
        match self.last {
            Some(last) if stamp < last => false,
            Some(last) if stamp == last => {
                if self.replay > 0 {
                    self.replay -= 1;
                    false
                } else {
                    self.at_last += 1;
                    true
                }
            }
            _ => {
                self.last = Some(stamp);
                self.at_last = 1;
                self.replay = 0;
                true
            }
        }
    }
}

/// Splits the API server's timestamp off a log line.
pub fn split_timestamp(line: &[u8]) -> (Option<Timestamp>, &[u8]) {
    let Some(space) = line.iter().take(TIMESTAMP_ROOM).position(|b| *b == b' ') else {
        return (None, line);
    };
    match std::str::from_utf8(&line[..space])
        .ok()
        .and_then(|text| text.parse::<Timestamp>().ok())
    {
        Some(stamp) => (Some(stamp), &line[space + 1..]),
        None => (None, line),
    }
}

/// One log to follow.
pub struct LogFollow {
    /// The pods of the trial's namespace.
    pub pods: Api<Pod>,
    /// The pod.
    pub pod: String,
    /// The primary container.
    pub container: String,
    /// Receives each line (without its newline, cut to [`MAX_LINE_BYTES`]).
    pub lines: mpsc::Sender<Vec<u8>>,
    /// Becomes true once the container has terminated (or the trial is over).
    pub done: watch::Receiver<bool>,
}

/// How one stream ended.
enum Ended {
    /// The server closed it.
    Closed,
    /// Reading failed (connection dropped).
    Broken,
    /// Nobody listens to the lines any more.
    Unwanted,
}

impl LogFollow {
    /// Follows the log until the container has ended and its log has been read to the end,
    /// the pod is gone, or nobody listens any more.
    pub async fn run(mut self) {
        let mut cursor = Cursor::default();
        let mut retry = FIRST_RETRY;
        let mut final_attempts = 0;
        loop {
            let params = LogParams {
                container: Some(self.container.clone()),
                follow: true,
                timestamps: true,
                since_time: cursor.since(),
                ..LogParams::default()
            };
            cursor.restart();
            let ended = match self.pods.log_stream(&self.pod, &params).await {
                Ok(stream) => {
                    let before = cursor.clone();
                    let ended = self.read(Box::pin(stream), &mut cursor).await;
                    if cursor != before {
                        retry = FIRST_RETRY;
                    }
                    ended
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    tracing::debug!("pod {} is gone; its log ends here", self.pod);
                    return;
                }
                Err(e) => {
                    tracing::debug!("cannot read the log of pod {}: {e}", self.pod);
                    Ended::Broken
                }
            };
            let done = *self.done.borrow();
            match ended {
                Ended::Unwanted => return,
                Ended::Closed if done => return,
                Ended::Broken if done => {
                    final_attempts += 1;
                    if final_attempts > FINAL_ATTEMPTS {
                        tracing::warn!(
                            "the log of pod {} could not be read to its end; later lines may be missing",
                            self.pod
                        );
                        return;
                    }
                }
                Ended::Closed | Ended::Broken => {}
            }
            // The container still runs (or its end is not known yet): reconnect after a pause,
            // sooner if it ends meanwhile.
            let _ = tokio::time::timeout(retry, self.done.changed()).await;
            retry = (retry * 2).min(MAX_RETRY);
        }
    }

    /// Reads one stream to its end.
    async fn read<R>(&self, mut reader: R, cursor: &mut Cursor) -> Ended
    where
        R: futures::AsyncBufRead + Unpin,
    {
        let cap = MAX_LINE_BYTES + TIMESTAMP_ROOM;
        let mut line = Vec::new();
        loop {
            let (consumed, complete) = match reader.fill_buf().await {
                Ok([]) => break,
                Ok(buffer) => super::super::take_line(buffer, &mut line, cap),
                Err(e) => {
                    tracing::debug!("the log stream of pod {} broke: {e}", self.pod);
                    return Ended::Broken;
                }
            };
            reader.consume_unpin(consumed);
            if complete && !self.deliver(std::mem::take(&mut line), cursor).await {
                return Ended::Unwanted;
            }
        }
        if !line.is_empty() && !self.deliver(line, cursor).await {
            return Ended::Unwanted;
        }
        Ended::Closed
    }

    /// Passes one raw line on if it is new; false when nobody listens any more.
    async fn deliver(&self, raw: Vec<u8>, cursor: &mut Cursor) -> bool {
        let (stamp, text) = split_timestamp(&raw);
        if !cursor.admit(stamp) {
            return true;
        }
        let mut text = text.to_vec();
        if text.last() == Some(&b'\r') {
            text.pop();
        }
        text.truncate(MAX_LINE_BYTES);
        self.lines.send(text).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<Timestamp> {
        Some(text.parse().expect("timestamp"))
    }

    #[test]
    fn timestamps_are_split_off() {
        let (stamp, text) = split_timestamp(b"2026-01-02T03:04:05.123456789Z loss=0.5");
        assert_eq!(stamp, at("2026-01-02T03:04:05.123456789Z"));
        assert_eq!(text, b"loss=0.5");
        let (stamp, text) = split_timestamp(b"no timestamp here");
        assert_eq!(stamp, None);
        assert_eq!(text, b"no timestamp here");
        let (stamp, text) = split_timestamp(b"2026-01-02T03:04:05Z ");
        assert!(stamp.is_some());
        assert_eq!(text, b"");
    }

    #[test]
    fn a_resumed_stream_repeats_nothing_and_loses_nothing() {
        let mut cursor = Cursor::default();
        let first = [
            "2026-01-02T03:04:05.1Z",
            "2026-01-02T03:04:05.2Z",
            "2026-01-02T03:04:05.2Z",
        ];
        for stamp in first {
            assert!(cursor.admit(at(stamp)));
        }
        assert_eq!(cursor.since(), at("2026-01-02T03:04:05Z"));
        cursor.restart();
        // The new stream starts at the second: .1 and both .2 again, then a third .2 and .3.
        let again = [
            ("2026-01-02T03:04:05.1Z", false),
            ("2026-01-02T03:04:05.2Z", false),
            ("2026-01-02T03:04:05.2Z", false),
            ("2026-01-02T03:04:05.2Z", true),
            ("2026-01-02T03:04:05.3Z", true),
        ];
        for (stamp, new) in again {
            assert_eq!(cursor.admit(at(stamp)), new, "{stamp}");
        }
        assert!(cursor.admit(None));
    }

    /// A log endpoint whose first stream breaks off after two lines (the connection drops
    /// while the container runs) and whose second, asked from `sinceTime`, repeats them.
    async fn flaky_log_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use axum::extract::RawQuery;
        let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = queries.clone();
        let app = axum::Router::new().route(
            "/api/v1/namespaces/default/pods/trial-pod/log",
            axum::routing::get(move |RawQuery(query): RawQuery| {
                let seen = seen.clone();
                async move {
                    let mut all = seen.lock().expect("lock");
                    all.push(query.unwrap_or_default());
                    match all.len() {
                        1 => "2026-01-02T03:04:05.100Z loss=0.9\n2026-01-02T03:04:05.200Z loss=0.8"
                            .to_string(),
                        _ => {
                            "2026-01-02T03:04:05.100Z loss=0.9\n2026-01-02T03:04:05.200Z loss=0.8\n\
                              2026-01-02T03:04:06.300Z loss=0.7\n"
                                .to_string()
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, queries)
    }

    #[tokio::test]
    async fn a_dropped_log_stream_resumes_from_its_last_line() {
        super::super::connect::install_crypto_provider();
        let (url, queries) = flaky_log_server().await;
        let config = kube::Config::new(url.parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let (lines, mut received) = mpsc::channel(16);
        let (done, done_rx) = watch::channel(false);
        let follow = LogFollow {
            pods: Api::namespaced(client, "default"),
            pod: "trial-pod".into(),
            container: "trial".into(),
            lines,
            done: done_rx,
        };
        let task = tokio::spawn(follow.run());
        let mut got = Vec::new();
        while got.len() < 3 {
            let line = tokio::time::timeout(Duration::from_secs(10), received.recv())
                .await
                .expect("a line in time")
                .expect("a line");
            got.push(String::from_utf8(line).expect("utf-8"));
        }
        done.send(true).expect("follower listens");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the follower ends")
            .expect("join");
        assert_eq!(got, ["loss=0.9", "loss=0.8", "loss=0.7"]);
        let queries = queries.lock().expect("lock").clone();
        assert!(queries[0].contains("follow=true") && queries[0].contains("timestamps=true"));
        assert!(!queries[0].contains("sinceTime"), "{queries:?}");
        assert!(
            queries[1].contains("sinceTime=2026-01-02T03%3A04%3A05Z"),
            "{queries:?}"
        );
    }
}
