//! A small client for the part of MLflow's REST API (`/api/2.0/mlflow/...`) the exporter
//! needs: experiments by name, runs (create, update, search), batched logging and metric
//! history.
//!
//! Every call is retried with exponential backoff when the answer says "try again": a
//! connection that failed, a timeout, `429 Too Many Requests` or any `5xx`. Other errors
//! (`400` for a bad metric name, `404`) are returned at once, since repeating the same
//! request cannot fix them. Retrying is safe for the calls the exporter repeats: MLflow
//! ignores a metric point logged twice and accepts a param logged again with the same value;
//! run creation, which is not idempotent, is guarded by the exporter (it searches for the
//! run again after a failure before creating it).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

/// How long one HTTP request may take before it counts as failed (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per call, the first one included.
const ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Runs per page of `runs/search` (MLflow's maximum is 50,000; 1,000 keeps answers small).
const SEARCH_PAGE: u32 = 1000;
/// Points per page of `metrics/get-history`.
const HISTORY_PAGE: u32 = 25_000;

/// Why a call to MLflow failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or did not answer in time, after every retry.
    #[error("cannot reach MLflow at {url}: {reason}")]
    Unreachable {
        /// The request's URL, without its query.
        url: String,
        /// The innermost cause (`Connection refused`, `operation timed out`).
        reason: String,
        /// The transport's error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status (after retries, for 429 and 5xx).
    #[error("MLflow answered {status} to {endpoint}: {message}")]
    Status {
        /// The endpoint called (`runs/log-batch`).
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// MLflow's `error_code`, when the body had one (`RESOURCE_DOES_NOT_EXIST`).
        code: Option<String>,
        /// MLflow's message, or the start of the body.
        message: String,
    },
    /// The answer was not the JSON expected.
    #[error("MLflow's answer to {endpoint} is not understood: {source}")]
    Decode {
        /// The endpoint called.
        endpoint: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The HTTP client could not be built (no TLS backend).
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

impl ClientError {
    /// True when MLflow could not be reached at all (nothing is listening, DNS, timeout):
    /// waiting is the only remedy.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    /// True for answers that retrying later may change (unreachable, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Status { status, .. } => is_retryable(*status),
            ClientError::Decode { .. } | ClientError::Build(_) => false,
        }
    }

    /// True when MLflow says the thing asked for does not exist.
    fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Status { status: 404, .. })
            || matches!(self, ClientError::Status { code: Some(code), .. } if code == "RESOURCE_DOES_NOT_EXIST")
    }
}

/// The innermost error's message: reqwest's own says only "error sending request".
fn root_cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".to_string();
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

fn is_retryable(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// A key and value: a param or a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl KeyValue {
    /// A pair from anything string-like.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One metric point as MLflow's API writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The metric's name.
    pub key: String,
    /// Its value.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The step.
    #[serde(default)]
    pub step: i64,
}

/// A run as `runs/search` returns it (the fields the exporter reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    /// Its info.
    pub info: RunInfo,
    /// Its data.
    #[serde(default)]
    pub data: RunData,
}

impl Run {
    /// The value of tag `key`, if the run has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.data
            .tags
            .iter()
            .find(|tag| tag.key == key)
            .map(|tag| tag.value.as_str())
    }
}

/// What a run is.
#[derive(Debug, Clone, Deserialize)]
pub struct RunInfo {
    /// Its id.
    pub run_id: String,
    /// Its status (`RUNNING`, `FINISHED`, ...).
    #[serde(default)]
    pub status: Option<String>,
    /// When it ended, in milliseconds.
    #[serde(default)]
    pub end_time: Option<i64>,
}

/// A run's params, tags and latest metrics.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunData {
    /// The latest value of each metric.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Its params.
    #[serde(default)]
    pub params: Vec<KeyValue>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

/// A run to create.
#[derive(Debug, Clone, Serialize)]
pub struct NewRun<'a> {
    /// The experiment it goes in.
    pub experiment_id: &'a str,
    /// Its name.
    pub run_name: &'a str,
    /// When it started, in milliseconds.
    pub start_time: i64,
    /// Its tags.
    pub tags: Vec<KeyValue>,
}

/// One `runs/log-batch` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogBatch {
    /// Metric points (at most 1,000).
    pub metrics: Vec<Metric>,
    /// Params (at most 100).
    pub params: Vec<KeyValue>,
    /// Tags (at most 100).
    pub tags: Vec<KeyValue>,
}

/// A client of one MLflow tracking server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    api: Url,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<String>,
    message: Option<String>,
}

impl Client {
    /// A client of the tracking server at `base` (`http://host:5000`, maybe with a path).
    ///
    /// # Errors
    ///
    /// [`ClientError::Build`] when the HTTP client cannot be set up.
    pub fn new(base: &Url) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tuneflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        let mut api = base.clone();
        if !api.path().ends_with('/') {
            api.set_path(&format!("{}/", api.path()));
        }
        api.set_path(&format!("{}api/2.0/mlflow/", api.path()));
        Ok(Client { http, api })
    }

    /// The id of the experiment called `name`, if there is one (active or deleted).
    pub async fn experiment_id_by_name(&self, name: &str) -> Result<Option<String>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            experiment: Experiment,
        }
        #[derive(Deserialize)]
        struct Experiment {
            experiment_id: String,
        }
        match self
            .get::<Answer>(
                "experiments/get-by-name",
                &[("experiment_name", name.to_string())],
            )
            .await
        {
            Ok(answer) => Ok(Some(answer.experiment.experiment_id)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates an experiment and returns its id.
    pub async fn create_experiment(&self, name: &str) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            experiment_id: String,
        }
        let answer: Answer = self
            .post("experiments/create", &serde_json::json!({ "name": name }))
            .await?;
        Ok(answer.experiment_id)
    }

    /// Creates a run and returns its id.
    pub async fn create_run(&self, run: &NewRun<'_>) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            run: Run,
        }
        let answer: Answer = self.post("runs/create", run).await?;
        Ok(answer.run.info.run_id)
    }

    /// Sets a run's status and, when given, its end time (milliseconds).
    pub async fn update_run(
        &self,
        run_id: &str,
        status: &str,
        end_time: Option<i64>,
    ) -> Result<(), ClientError> {
        let mut body = serde_json::json!({ "run_id": run_id, "status": status });
        if let Some(end_time) = end_time {
            body["end_time"] = end_time.into();
        }
        self.post::<serde_json::Value>("runs/update", &body)
            .await
            .map(drop)
    }

    /// Logs one batch (within MLflow's limits; see [`super::batch`]).
    pub async fn log_batch(&self, run_id: &str, batch: &LogBatch) -> Result<(), ClientError> {
        #[derive(Serialize)]
        struct Body<'a> {
            run_id: &'a str,
            #[serde(flatten)]
            batch: &'a LogBatch,
        }
        self.post::<serde_json::Value>("runs/log-batch", &Body { run_id, batch })
            .await
            .map(drop)
    }

    /// Every active run of an experiment matching `filter` (MLflow's search syntax), all
    /// pages.
    pub async fn search_runs(
        &self,
        experiment_id: &str,
        filter: &str,
    ) -> Result<Vec<Run>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            runs: Vec<Run>,
            next_page_token: Option<String>,
        }
        let mut runs = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut body = serde_json::json!({
                "experiment_ids": [experiment_id],
                "filter": filter,
                "run_view_type": "ACTIVE_ONLY",
                "max_results": SEARCH_PAGE,
            });
            if let Some(token) = &page_token {
                body["page_token"] = token.clone().into();
            }
            let answer: Answer = self.post("runs/search", &body).await?;
            runs.extend(answer.runs);
            match answer.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page_token = Some(token),
                None => return Ok(runs),
            }
        }
    }

    /// Every logged point of one metric of a run, all pages.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
    ) -> Result<Vec<Metric>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            metrics: Vec<Metric>,
            next_page_token: Option<String>,
        }
        let mut points = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![
                ("run_id", run_id.to_string()),
                ("metric_key", key.to_string()),
                ("max_results", HISTORY_PAGE.to_string()),
            ];
            if let Some(token) = &page_token {
                query.push(("page_token", token.clone()));
            }
            let answer: Answer = self.get("metrics/get-history", &query).await?;
            points.extend(answer.metrics);
            match answer.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page_token = Some(token),
                None => return Ok(points),
            }
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        self.call(endpoint, || self.http.get(self.url(endpoint)).query(query))
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        self.call(endpoint, || self.http.post(self.url(endpoint)).json(body))
            .await
    }

    fn url(&self, endpoint: &str) -> Url {
        // The base ends with a slash and endpoints are fixed relative paths.
        self.api.join(endpoint).unwrap_or_else(|_| self.api.clone())
    }

    /// Sends the request `build` makes, retrying transient failures with backoff.
    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = self.once(endpoint, build()).await;
            match result {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    tracing::debug!("MLflow {endpoint}: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn once<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let unreachable = |source: reqwest::Error| ClientError::Unreachable {
            url: self.url(endpoint).to_string(),
            reason: root_cause(&source),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(error) => (error.error_code, error.message.unwrap_or_default()),
                Err(_) => (
                    None,
                    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                ),
            };
            return Err(ClientError::Status {
                endpoint,
                status: status.as_u16(),
                code,
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|source| ClientError::Decode { endpoint, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_root_keeps_a_path_prefix() {
        for (base, expected) in [
            (
                "http://127.0.0.1:5000",
                "http://127.0.0.1:5000/api/2.0/mlflow/runs/search",
            ),
            (
                "https://host/prefix",
                "https://host/prefix/api/2.0/mlflow/runs/search",
            ),
            (
                "https://host/prefix/",
                "https://host/prefix/api/2.0/mlflow/runs/search",
            ),
        ] {
            let client = Client::new(&Url::parse(base).expect("url")).expect("client");
            assert_eq!(client.url("runs/search").as_str(), expected);
        }
    }

    #[test]
    fn only_unreachable_429_and_5xx_are_retried() {
        let status = |status| ClientError::Status {
            endpoint: "runs/log-batch",
            status,
            code: None,
            message: String::new(),
        };
        assert!(status(429).is_transient());
        assert!(status(503).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(404).is_transient());
        assert!(status(404).is_not_found());
    }
}
