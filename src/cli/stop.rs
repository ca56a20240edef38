//! `tuneflow stop EXP`: stop an experiment and keep its data.
//!
//! The stop is a request recorded in the store (`Store::request_stop`); whichever process
//! runs the experiment (`tuneflow run` in another terminal, a `serve`, the operator) finds it
//! within a second or so, stops the running trials and ends the experiment Interrupted, from
//! where running it again resumes it. With `--server` the request goes through that server's
//! API instead (`POST /api/v1/experiments/{name}/stop`). Either way the command waits (up to
//! `--wait`) to report how the experiment ended.

use std::time::{Duration, Instant};

use super::{Exit, StopArgs};
use crate::store::{self, ExperimentState, StoreLocation};

/// How often the state is read while waiting.
const POLL: Duration = Duration::from_millis(200);

/// Stops the experiment `args.experiment`.
pub async fn stop(store_url: &str, args: StopArgs) -> anyhow::Result<Exit> {
    match &args.server {
        Some(server) => stop_through(server, &args).await,
        None => stop_in_store(store_url, &args).await,
    }
}

/// Records the request in the store and waits for the experiment to end.
async fn stop_in_store(store_url: &str, args: &StopArgs) -> anyhow::Result<Exit> {
    let location = StoreLocation::parse(store_url)?;
    let store = store::open(&location).await?;
    let Some(experiment) = store.experiment(&args.experiment).await? else {
        errln!(
            "error: no experiment named `{}` in {store_url}",
            args.experiment
        );
        errln!("hint: `tuneflow experiments` lists them");
        return Ok(Exit::Failure);
    };
    if !matches!(
        experiment.state,
        ExperimentState::Running | ExperimentState::Created
    ) {
        errln!(
            "error: experiment `{}` is {}, not running: there is nothing to stop",
            experiment.name,
            experiment.state
        );
        return Ok(Exit::Failure);
    }
    store
        .request_stop(experiment.id, "stop requested by `tuneflow stop`")
        .await?;
    errln!(
        "stop requested for `{}`; waiting for it to stop...",
        experiment.name
    );
    let deadline = Instant::now() + args.wait;
    loop {
        let current = store.experiment(&experiment.name).await?;
        match current {
            Some(current) if current.state != ExperimentState::Running => {
                return Ok(report(
                    &current.name,
                    current.state,
                    current.message.as_deref(),
                ));
            }
            None => {
                errln!("experiment `{}` was deleted meanwhile", experiment.name);
                return Ok(Exit::Failure);
            }
            Some(_) if Instant::now() >= deadline => {
                return Ok(not_yet(&experiment.name, args.wait));
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Asks a server to stop the experiment and waits for it to end.
async fn stop_through(server: &url::Url, args: &StopArgs) -> anyhow::Result<Exit> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut experiment_url = server.clone();
    experiment_url
        .path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {server} cannot take a path"))?
        .pop_if_empty()
        .extend(["api", "v1", "experiments", args.experiment.as_str()]);
    let mut stop_url = experiment_url.clone();
    stop_url
        .path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {server} cannot take a path"))?
        .push("stop");
    let authorized = |request: reqwest::RequestBuilder| match args.token.as_deref() {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let answer = authorized(client.post(stop_url.clone())).send().await?;
    let status = answer.status();
    if !status.is_success() {
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| status.to_string());
        errln!(
            "error: {server} refused to stop `{}`: {message}",
            args.experiment
        );
        if status == reqwest::StatusCode::UNAUTHORIZED {
            errln!("hint: pass the server's token with --token (or TUNEFLOW_TOKEN)");
        }
        return Ok(Exit::Failure);
    }
    errln!(
        "stop requested for `{}`; waiting for it to stop...",
        args.experiment
    );
    let deadline = Instant::now() + args.wait;
    loop {
        let body: serde_json::Value = authorized(client.get(experiment_url.clone()))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let state = body["state"].as_str().unwrap_or_default();
        if state != "Running" && state != "Created" {
            let state = state.parse().unwrap_or(ExperimentState::Interrupted);
            return Ok(report(&args.experiment, state, body["message"].as_str()));
        }
        if Instant::now() >= deadline {
            return Ok(not_yet(&args.experiment, args.wait));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Says how the experiment ended.
fn report(name: &str, state: ExperimentState, message: Option<&str>) -> Exit {
    outln!(
        "experiment {name}: {state}{}",
        message.map(|m| format!(" ({m})")).unwrap_or_default()
    );
    if state == ExperimentState::Interrupted {
        errln!("hint: running it again (`tuneflow run FILE`) resumes it");
    }
    Exit::Success
}

/// Says that the request is recorded but nothing acted on it yet.
fn not_yet(name: &str, waited: Duration) -> Exit {
    errln!(
        "error: `{name}` is still running after {}: the stop request is recorded, and the process running it acts on it when it next looks",
        humantime::format_duration(waited)
    );
    errln!(
        "hint: is that process alive? A crashed run leaves its experiment Running until it is run again"
    );
    Exit::Failure
}
