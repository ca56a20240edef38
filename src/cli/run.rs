//! `tuneflow run FILE`: validate, create or resume the experiment, run it with a live
//! progress display, and print the best trials.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::output::{self, Output};
use super::progress::Display;
use super::{Exit, RunArgs};
use crate::engine::{Engine, RunRequest, rules};
use crate::export::mlflow::{Exporter, Selection};
use crate::spec::{self, CollectorKind};
use crate::store::{self, ExperimentState, StoreLocation};
use crate::summary::{self, BestTrial, ExperimentSummary, TrialSummary};

/// How many of the best trials the final table shows.
const TOP: usize = 5;

#[derive(Serialize)]
struct RunReport {
    experiment: ExperimentSummary,
    top: Vec<TrialSummary>,
}

/// Runs the experiment in `args.file`.
pub async fn run(store_url: &str, args: RunArgs) -> anyhow::Result<Exit> {
    let document = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => {
            errln!("error: cannot read {}: {e}", args.file.display());
            return Ok(Exit::Invalid);
        }
    };
    let spec = match spec::parse_str(&document, &args.file.display().to_string()) {
        Ok(spec) => spec,
        Err(errors) => {
            err!("{errors}");
            errln!(
                "hint: `tuneflow validate {}` checks a file without running it",
                args.file.display()
            );
            return Ok(Exit::Invalid);
        }
    };
    let mlflow_flag = match super::export::flag_uri(args.mlflow_uri.as_deref()) {
        Ok(flag) => flag,
        Err(exit) => return Ok(exit),
    };
    let executor = match args.executor.build().await {
        Ok(executor) => executor,
        Err(message) => {
            errln!("error: {message}");
            return Ok(Exit::Failure);
        }
    };
    let location = StoreLocation::parse(store_url)?;
    let store: Arc<dyn store::Store> = Arc::from(store::open(&location).await?);
    let mut engine = Engine::new(store.clone(), executor, location.logs_dir());
    // Trials that log through MLflow's client need a tracking API; it lives as long as the run.
    let tracking_shutdown = CancellationToken::new();
    let _stop_tracking = tracking_shutdown.clone().drop_guard();
    if spec.metrics_collector.kind == CollectorKind::MLflow {
        let endpoint =
            crate::api::serve_for_trials(store.clone(), location.logs_dir(), tracking_shutdown)
                .await?;
        tracing::info!("trials log to the MLflow tracking API at {}", endpoint.uri);
        engine = engine.with_tracking(endpoint);
    }
    let base_dir = args
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .with_context(|| format!("cannot resolve the directory of {}", args.file.display()))?;

    // The export reads the store on its own task; the run never waits for it until the end.
    let mlflow = super::export::target(mlflow_flag.as_ref(), &spec).map(|uri| {
        let selection = Selection::Experiment(spec.name.clone());
        (
            uri,
            Exporter::spawn(store.clone(), selection, mlflow_flag.clone()),
        )
    });
    let name = spec.name.clone();

    let cancel = CancellationToken::new();
    tokio::spawn(watch_signals(cancel.clone()));
    // A PostgreSQL password stays out of the terminal's scrollback.
    let store_word = shell_word(&crate::store::postgres::redact(store_url));
    errln!(
        "watch it live: tuneflow dashboard --store {store_word} --open  (stop it: tuneflow stop {} --store {store_word})",
        shell_word(&name),
    );
    let display = Display::new(&spec);
    let result = engine
        .run(
            RunRequest {
                spec,
                document,
                base_dir,
                fresh: args.fresh,
                updates: None,
            },
            &display,
            cancel,
        )
        .await;
    display.finish();
    if let Some((uri, exporter)) = mlflow {
        super::export::finish(exporter, &uri, &name, super::export::RUN_FLUSH_TIMEOUT).await;
    }
    let experiment = result?;
    let trials = store.trials(experiment.id).await?;
    let summary = ExperimentSummary::new(&experiment, &trials);
    let ranked = rules::ranked(&experiment.spec, &trials);
    if args.output == Output::Json {
        output::json(&RunReport {
            top: ranked
                .iter()
                .take(TOP)
                .map(|t| TrialSummary::new(&experiment.spec, t))
                .collect(),
            experiment: summary,
        })?;
    } else {
        print_summary(&summary, &experiment.spec, &ranked);
        if let Some(best) = BestTrial::of(&experiment, &trials) {
            outln!();
            super::query::print_best(&best);
        }
    }
    Ok(match experiment.state {
        ExperimentState::Succeeded => Exit::Success,
        ExperimentState::Interrupted => Exit::Interrupted,
        _ => Exit::Failure,
    })
}

fn print_summary(
    summary: &ExperimentSummary,
    spec: &crate::spec::ExperimentSpec,
    ranked: &[&crate::store::Trial],
) {
    let c = &summary.trials;
    outln!(
        "experiment {}: {} ({})",
        summary.name,
        summary.state,
        summary
            .message
            .as_deref()
            .or(summary.reason.as_deref())
            .unwrap_or("")
    );
    outln!(
        "trials: {} succeeded, {} failed, {} killed, {} total",
        c.succeeded,
        c.failures(),
        c.killed,
        c.total()
    );
    if ranked.is_empty() {
        return;
    }
    outln!();
    let mut header = vec![
        "RANK".to_string(),
        "TRIAL".to_string(),
        spec.objective.metric.to_uppercase(),
    ];
    header.extend(spec.space.parameters.iter().map(|p| p.name.clone()));
    let mut table = output::table(header);
    for (rank, trial) in ranked.iter().take(TOP).enumerate() {
        let mut row = vec![
            (rank + 1).to_string(),
            trial.name.clone(),
            summary::human_opt(trial.objective),
        ];
        row.extend(summary::parameters(spec, trial).values().map(summary::cell));
        table.add_row(row);
    }
    output::print_table(&table);
}

/// `word` as one shell word: as it is when it is plain, single-quoted otherwise.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Cancels `cancel` on Ctrl-C or SIGTERM.
pub(super) async fn watch_signals(cancel: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    errln!("interrupted: stopping...");
    cancel.cancel();
}
