//! `tuneflow export EXPERIMENT`: mirror an experiment to an MLflow tracking server now, and
//! the `--mlflow-uri` handling that `run` and `serve` share.
//!
//! `run` and `serve` mirror in the background (see [`crate::export::mlflow`]); this command
//! is the same exporter run once to completion, for experiments finished while MLflow was
//! down. Nothing MLflow already has is sent twice, so it can be repeated safely.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::{Exit, ExportArgs};
use crate::export::mlflow::{Exporter, Report, Selection};
use crate::spec::{self, ExperimentSpec};
use crate::store::{self, StoreLocation};

/// How long `tuneflow run` waits for the export of an experiment it finished.
pub(super) const RUN_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the `--mlflow-uri` value; prints the error with a hint and returns
/// [`Exit::Invalid`] when it is not a usable address.
pub(super) fn flag_uri(value: Option<&str>) -> Result<Option<Url>, Exit> {
    let Some(value) = value else {
        return Ok(None);
    };
    match spec::tracking::mlflow_uri(value) {
        Ok(url) => Ok(Some(url)),
        Err(message) => {
            errln!("error: --mlflow-uri (or TUNEFLOW_MLFLOW_URI): {message}");
            errln!("hint: {}", spec::tracking::MLFLOW_URI_HINT);
            Err(Exit::Invalid)
        }
    }
}

/// Where an experiment is mirrored: the flag wins over the spec.
pub(super) fn target(flag: Option<&Url>, spec: &ExperimentSpec) -> Option<String> {
    flag.map(Url::to_string)
        .or_else(|| spec.tracking.mlflow_uri.clone())
}

/// Waits (bounded) for the export of a finished experiment and says what is missing and how
/// to send it later.
pub(super) async fn finish(
    mut exporter: Exporter,
    uri: &str,
    experiment: &str,
    timeout: Duration,
) -> Report {
    let report = exporter.flush(timeout).await;
    exporter.stop().await;
    if report.is_complete() {
        errln!("MLflow: experiment {experiment} is mirrored to {uri}");
    } else {
        let why = report
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_else(|| format!(" within {}s", timeout.as_secs()));
        errln!(
            "warning: MLflow export incomplete, {} not sent to {uri}{why}",
            report.pending
        );
        errln!(
            "hint: the store keeps everything; when MLflow answers, `tuneflow export {experiment} --mlflow-uri {uri}` sends the rest (nothing is sent twice)"
        );
    }
    report
}

/// Runs `tuneflow export`.
pub async fn export(store_url: &str, args: ExportArgs) -> anyhow::Result<Exit> {
    let flag = match flag_uri(args.mlflow_uri.as_deref()) {
        Ok(flag) => flag,
        Err(exit) => return Ok(exit),
    };
    let location = StoreLocation::parse(store_url)?;
    let store: Arc<dyn store::Store> = Arc::from(store::open(&location).await?);
    let Some(experiment) = store.experiment(&args.experiment).await? else {
        return Err(store::StoreError::NotFound(args.experiment).into());
    };
    let Some(uri) = target(flag.as_ref(), &experiment.spec) else {
        errln!(
            "error: experiment {} names no MLflow server (spec.tracking.mlflow.uri)",
            experiment.name
        );
        errln!("hint: pass --mlflow-uri URL");
        return Ok(Exit::Invalid);
    };
    let exporter = Exporter::spawn(store, Selection::Experiment(experiment.name.clone()), flag);
    let report = finish(exporter, &uri, &experiment.name, args.timeout).await;
    Ok(if report.is_complete() {
        Exit::Success
    } else {
        Exit::Failure
    })
}
