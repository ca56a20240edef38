//! `tuneflow experiments`, `tuneflow trials EXP`, `tuneflow best EXP`: reading the store.

use anyhow::Context;

use super::output::{self, Output};
use super::{Exit, ExperimentArgs, ListArgs, TrialArgs};
use crate::store::{self, Experiment, Observation, Store, StoreError, StoreLocation, Trial};
use crate::summary::{self, BestTrial, ExperimentSummary, TrialSummary};

/// Opens the store for reading.
pub async fn open_store(url: &str) -> anyhow::Result<Box<dyn Store>> {
    let location = StoreLocation::parse(url)?;
    if let StoreLocation::Sqlite(path) = &location
        && !path.exists()
    {
        anyhow::bail!(
            "no store at {} (nothing has run here yet; run an experiment first or pass --store)",
            path.display()
        );
    }
    Ok(store::open(&location).await?)
}

async fn load(store: &dyn Store, name: &str) -> anyhow::Result<(Experiment, Vec<Trial>)> {
    let experiment = store
        .experiment(name)
        .await?
        .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
    let trials = store.trials(experiment.id).await?;
    Ok((experiment, trials))
}

/// Lists experiments.
pub async fn experiments(store_url: &str, args: ListArgs) -> anyhow::Result<Exit> {
    let store = open_store(store_url).await?;
    let mut summaries = Vec::new();
    for experiment in store.experiments().await? {
        let tally = store
            .tally(experiment.id, experiment.spec.objective.direction)
            .await?;
        summaries.push(ExperimentSummary::from_tally(&experiment, &tally));
    }
    if args.output == Output::Json {
        output::json(&summaries)?;
        return Ok(Exit::Success);
    }
    if summaries.is_empty() {
        errln!("no experiments in this store");
        return Ok(Exit::Success);
    }
    let mut table = output::table([
        "NAME",
        "STATE",
        "REASON",
        "ALGORITHM",
        "TRIALS",
        "FAILED",
        "BEST",
        "CREATED",
    ]);
    for s in &summaries {
        let total = s.trials.total();
        let trials = match s.max_trial_count {
            Some(max) => format!("{}/{max}", s.trials.finished()),
            None => total.to_string(),
        };
        let best = s
            .best
            .as_ref()
            .map(|b| format!("{}={}", b.metric, summary::human(b.objective)))
            .unwrap_or_else(|| "-".to_string());
        table.add_row(vec![
            s.name.clone(),
            s.state.clone(),
            s.reason.clone().unwrap_or_default(),
            s.algorithm.clone(),
            trials,
            s.trials.failures().to_string(),
            best,
            s.created_at.get(..19).unwrap_or_default().replace('T', " "),
        ]);
    }
    output::print_table(&table);
    Ok(Exit::Success)
}

/// Lists an experiment's trials.
pub async fn trials(store_url: &str, args: ExperimentArgs) -> anyhow::Result<Exit> {
    let store = open_store(store_url).await?;
    let (experiment, trials) = load(store.as_ref(), &args.experiment).await?;
    let spec = &experiment.spec;
    let summaries: Vec<TrialSummary> = trials.iter().map(|t| TrialSummary::new(spec, t)).collect();
    if args.output == Output::Json {
        output::json(&summaries)?;
        return Ok(Exit::Success);
    }
    let mut header = vec![
        "TRIAL".to_string(),
        "STATE".to_string(),
        spec.objective.metric.to_uppercase(),
    ];
    header.extend(spec.space.parameters.iter().map(|p| p.name.clone()));
    header.extend([
        "STEP".to_string(),
        "DURATION".to_string(),
        "MESSAGE".to_string(),
    ]);
    let mut table = output::table(header);
    for s in &summaries {
        let mut row = vec![
            s.name.clone(),
            s.state.clone(),
            summary::human_opt(s.objective),
        ];
        row.extend(s.parameters.values().map(summary::cell));
        row.push(
            s.step
                .map_or_else(|| "-".to_string(), |step| step.to_string()),
        );
        row.push(
            s.duration_seconds
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".to_string()),
        );
        row.push(if s.state == "Succeeded" {
            String::new()
        } else {
            s.message.clone().unwrap_or_default()
        });
        table.add_row(row);
    }
    output::print_table(&table);
    Ok(Exit::Success)
}

/// Shows the best trial.
pub async fn best(store_url: &str, args: ExperimentArgs) -> anyhow::Result<Exit> {
    let store = open_store(store_url).await?;
    let (experiment, trials) = load(store.as_ref(), &args.experiment).await?;
    let best = BestTrial::of(&experiment, &trials).with_context(|| {
        format!(
            "experiment `{}` has no succeeded trial yet ({} trials stored)",
            experiment.name,
            trials.len()
        )
    })?;
    if args.output == Output::Json {
        output::json(&best)?;
    } else {
        print_best(&best);
    }
    Ok(Exit::Success)
}

/// Prints the best trial for people.
pub fn print_best(best: &BestTrial) {
    outln!(
        "best trial: {}  {} = {}",
        best.trial,
        best.metric,
        summary::human(best.objective)
    );
    let mut table = output::table(["PARAMETER", "VALUE"]);
    for (name, value) in &best.parameters {
        table.add_row(vec![name.clone(), summary::cell(value)]);
    }
    output::print_table(&table);
}

#[derive(serde::Serialize)]
struct TrialDetail {
    #[serde(flatten)]
    trial: TrialSummary,
    observations: Vec<Observation>,
}

/// Shows one trial with its observations.
pub async fn trial(store_url: &str, args: TrialArgs) -> anyhow::Result<Exit> {
    let store = open_store(store_url).await?;
    let (experiment, trials) = load(store.as_ref(), &args.experiment).await?;
    let trial = trials
        .iter()
        .find(|t| t.name == args.trial)
        .with_context(|| {
            format!(
                "experiment `{}` has no trial named `{}` (`tuneflow trials {}` lists them)",
                experiment.name, args.trial, experiment.name
            )
        })?;
    let observations = store.observations(trial.id, None).await?;
    let summary = TrialSummary::new(&experiment.spec, trial);
    if args.output == Output::Json {
        output::json(&TrialDetail {
            trial: summary,
            observations,
        })?;
        return Ok(Exit::Success);
    }
    outln!("trial {}: {}", summary.name, summary.state);
    if let Some(message) = &summary.message {
        outln!("  {message}");
    }
    outln!(
        "{}: {}",
        experiment.spec.objective.metric,
        summary::human_opt(summary.objective)
    );
    for (name, value) in &summary.parameters {
        outln!("  {name} = {}", summary::cell(value));
    }
    if observations.is_empty() {
        outln!("no observations");
        return Ok(Exit::Success);
    }
    outln!();
    let mut table = output::table(["METRIC", "STEP", "VALUE", "TIME"]);
    for o in &observations {
        table.add_row(vec![
            o.metric.clone(),
            o.step.to_string(),
            summary::human(o.value),
            summary::timestamp(o.timestamp),
        ]);
    }
    output::print_table(&table);
    Ok(Exit::Success)
}
