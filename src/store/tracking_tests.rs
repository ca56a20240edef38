//! The tracking half of the store's contract ([`Tracking`]) as tests every backend must pass.
//!
//! Like the suite in `tests.rs`, each test is an async function taking a fresh `&dyn Store`,
//! and a backend runs them all with [`tracking_conformance_tests!`] and its own constructor.
//! Experiment names are unique per test and no test changes the Default experiment, so a
//! backend may run them against one shared database.

use tuneflow_algorithms::ParameterValue;

use super::tests as conformance;
use super::tests::{experiment, new_trial};
use super::tracking::{
    DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME, EXPERIMENT_TAG, KeyValue, Lifecycle,
    MetricPoint, NewRun, PARENT_RUN_TAG, RUN_NAME_TAG, Run, RunStatus, RunUpdate, TRIAL_TAG,
    TrackingExperiment,
};
use super::{
    Experiment, ExperimentState, NewTrial, Observation, Store, StoreError, Trial, TrialOutcome,
    TrialState,
};

/// Defines one `#[tokio::test]` per tracking conformance test. `$fresh` is an async function
/// returning a fixture with a `store(&self) -> &dyn Store` method, holding a new empty store
/// (or `Option<&dyn Store>`, `None` skipping the test; see [`super::tests::Skip`]).
macro_rules! tracking_conformance_tests {
    ($fresh:path) => {
        $crate::store::tracking_tests::tracking_conformance_tests!(
            @each $fresh;
            the_default_experiment_exists,
            tracking_experiments_are_created_found_listed_renamed_and_tagged,
            deleting_a_tracking_experiment_deletes_its_runs_and_restoring_restores_them,
            a_tuneflow_experiment_is_a_tracking_experiment_with_a_parent_run,
            a_tuneflow_experiment_takes_over_an_mlflow_experiment_of_its_name,
            the_parent_run_follows_the_experiment_state,
            trial_runs_follow_their_trials,
            requeue_drops_the_metrics_of_the_run,
            observations_are_the_metric_history_of_trial_runs,
            log_batch_to_a_trial_run_records_observations,
            nan_and_infinity_round_trip,
            the_latest_metric_is_by_step_then_timestamp_then_value,
            runs_are_created_listed_updated_and_tagged,
            params_are_written_once_and_a_conflict_writes_nothing,
            a_trial_param_equal_as_a_number_is_the_same_param,
            deleted_runs_and_experiments_refuse_changes,
            missing_runs_and_experiments_are_errors,
            deleting_a_tuneflow_experiment_deletes_its_tracking_data,
        );
    };
    (@each $fresh:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let fixture = $fresh().await;
                let Some(store) = $crate::store::tests::Skip::or_skip(fixture.store()) else {
                    return;
                };
                $crate::store::tracking_tests::$name(store).await;
            }
        )+
    };
}
pub(crate) use tracking_conformance_tests;

fn point(key: &str, value: f64, timestamp: i64, step: i64) -> MetricPoint {
    MetricPoint {
        key: key.to_string(),
        value,
        timestamp,
        step,
    }
}

fn observation(metric: &str, step: i64, value: f64, timestamp: i64) -> Observation {
    Observation {
        metric: metric.to_string(),
        step,
        value,
        timestamp,
    }
}

fn tag(key: &str, value: &str) -> KeyValue {
    KeyValue::new(key, value)
}

/// The value of `key` among `pairs`.
fn value_of<'a>(pairs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|pair| pair.key == key)
        .map(|pair| pair.value.as_str())
}

/// Compares metric points, NaN equal to NaN.
fn same_points(left: &[MetricPoint], right: &[MetricPoint]) -> bool {
    left.len() == right.len()
        && left.iter().zip(right).all(|(a, b)| {
            a.key == b.key
                && a.step == b.step
                && a.timestamp == b.timestamp
                && (a.value == b.value || (a.value.is_nan() && b.value.is_nan()))
        })
}

/// The tracking experiment called `name`, which must exist.
async fn tracking_by_name(store: &dyn Store, name: &str) -> TrackingExperiment {
    store
        .tracking_experiment_by_name(name)
        .await
        .expect("read")
        .expect("the tracking experiment exists")
}

/// The run `run_id`, which must exist.
async fn run(store: &dyn Store, run_id: &str) -> Run {
    store
        .run(run_id)
        .await
        .expect("read")
        .expect("the run exists")
}

/// The run of `trial`.
async fn trial_run(store: &dyn Store, trial: &Trial) -> Run {
    let run_id = store
        .trial_run_id(trial.id)
        .await
        .expect("read")
        .expect("every trial has a run");
    run(store, &run_id).await
}

/// The parent run of the tuneflow experiment `experiment`.
async fn parent_run(store: &dyn Store, experiment: &Experiment) -> Run {
    let tracking = tracking_by_name(store, &experiment.name).await;
    let mut parents: Vec<Run> = store
        .runs(&[tracking.id])
        .await
        .expect("runs")
        .into_iter()
        .filter(|run| value_of(&run.tags, EXPERIMENT_TAG).is_some())
        .collect();
    assert_eq!(parents.len(), 1, "one parent run");
    parents.remove(0)
}

/// A new plain MLflow run in tracking experiment `experiment_id`.
async fn plain_run(store: &dyn Store, experiment_id: i64, name: &str) -> Run {
    let info = store
        .create_run(&NewRun {
            experiment_id,
            name: name.to_string(),
            user_id: "alice".to_string(),
            start_time: 1_000,
            tags: vec![tag("team", "vision")],
        })
        .await
        .expect("create run");
    run(store, &info.run_id).await
}

/// A new tracking experiment called `name`.
async fn tracking(store: &dyn Store, name: &str) -> TrackingExperiment {
    store
        .create_tracking_experiment(name, None, &[])
        .await
        .expect("create tracking experiment")
}

/// Records `count` trials of `experiment` in `state`.
async fn trials(
    store: &dyn Store,
    experiment: &Experiment,
    count: u64,
    state: TrialState,
) -> Vec<Trial> {
    let first = store.trials(experiment.id).await.expect("trials").len() as u64;
    let new: Vec<NewTrial> = (first..first + count)
        .map(|index| new_trial(&experiment.name, index, state))
        .collect();
    store
        .create_trials(experiment.id, &experiment.spec, &new)
        .await
        .expect("create trials")
}

fn outcome(state: TrialState) -> TrialOutcome {
    TrialOutcome {
        state,
        objective: Some(0.5),
        message: None,
        step: Some(1),
    }
}

pub(crate) async fn the_default_experiment_exists(store: &dyn Store) {
    let default = store
        .tracking_experiment(DEFAULT_EXPERIMENT_ID)
        .await
        .expect("read")
        .expect("Default exists");
    assert_eq!(default.name, DEFAULT_EXPERIMENT_NAME);
    assert_eq!(default.artifact_location, "mlflow-artifacts:/0");
    assert_eq!(default.lifecycle, Lifecycle::Active);
    assert_eq!(
        store
            .tracking_experiment_by_name(DEFAULT_EXPERIMENT_NAME)
            .await
            .expect("read")
            .map(|e| e.id),
        Some(DEFAULT_EXPERIMENT_ID)
    );
    let listed = store.tracking_experiments().await.expect("list");
    assert_eq!(listed.first().map(|e| e.id), Some(DEFAULT_EXPERIMENT_ID));

    let refused = store
        .set_tracking_experiment_lifecycle(DEFAULT_EXPERIMENT_ID, Lifecycle::Deleted)
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("Default")),
        "{refused:?}"
    );
    let default = store
        .tracking_experiment(DEFAULT_EXPERIMENT_ID)
        .await
        .expect("read")
        .expect("Default exists");
    assert_eq!(default.lifecycle, Lifecycle::Active);
}

pub(crate) async fn tracking_experiments_are_created_found_listed_renamed_and_tagged(
    store: &dyn Store,
) {
    let created = store
        .create_tracking_experiment(
            "te-crud",
            Some("s3://bucket/te"),
            &[tag("owner", "alice"), tag("team", "nlp")],
        )
        .await
        .expect("create");
    assert!(created.id > DEFAULT_EXPERIMENT_ID);
    assert_eq!(created.name, "te-crud");
    assert_eq!(created.artifact_location, "s3://bucket/te");
    assert_eq!(created.lifecycle, Lifecycle::Active);
    assert_eq!(created.experiment_id, None);
    assert_eq!(created.tags, [tag("owner", "alice"), tag("team", "nlp")]);
    assert!(created.updated_at >= created.created_at);

    let plain = tracking(store, "te-crud-plain").await;
    assert!(plain.id > created.id, "ids grow");
    assert_eq!(
        plain.artifact_location,
        format!("mlflow-artifacts:/{}", plain.id)
    );

    assert_eq!(
        store.tracking_experiment(created.id).await.expect("read"),
        Some(created.clone())
    );
    assert_eq!(tracking_by_name(store, "te-crud").await, created);
    assert_eq!(
        store
            .tracking_experiment_by_name("te-missing")
            .await
            .expect("read"),
        None
    );
    let listed: Vec<i64> = store
        .tracking_experiments()
        .await
        .expect("list")
        .into_iter()
        .filter(|e| e.name.starts_with("te-crud"))
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, [created.id, plain.id], "by id");

    let duplicate = store.create_tracking_experiment("te-crud", None, &[]).await;
    assert!(
        matches!(&duplicate, Err(StoreError::AlreadyExists(name)) if name == "te-crud"),
        "{duplicate:?}"
    );

    store
        .rename_tracking_experiment(created.id, "te-crud-renamed")
        .await
        .expect("rename");
    let renamed = tracking_by_name(store, "te-crud-renamed").await;
    assert_eq!(renamed.id, created.id);
    assert!(renamed.updated_at >= created.updated_at);
    assert_eq!(
        store
            .tracking_experiment_by_name("te-crud")
            .await
            .expect("read"),
        None
    );
    let taken = store
        .rename_tracking_experiment(created.id, "te-crud-plain")
        .await;
    assert!(
        matches!(&taken, Err(StoreError::AlreadyExists(name)) if name == "te-crud-plain"),
        "{taken:?}"
    );
    store
        .rename_tracking_experiment(created.id, "te-crud-renamed")
        .await
        .expect("renaming to its own name changes nothing");

    store
        .set_tracking_experiment_tag(created.id, &tag("team", "vision"))
        .await
        .expect("replace a tag");
    store
        .set_tracking_experiment_tag(created.id, &tag("alpha", "1"))
        .await
        .expect("add a tag");
    assert_eq!(
        tracking_by_name(store, "te-crud-renamed").await.tags,
        [
            tag("alpha", "1"),
            tag("owner", "alice"),
            tag("team", "vision")
        ],
        "tags by key"
    );
    let listed = store
        .tracking_experiments()
        .await
        .expect("list")
        .into_iter()
        .find(|e| e.id == created.id)
        .expect("listed");
    assert_eq!(listed.tags.len(), 3, "the list carries tags too");
}

pub(crate) async fn deleting_a_tracking_experiment_deletes_its_runs_and_restoring_restores_them(
    store: &dyn Store,
) {
    let bin = tracking(store, "te-bin").await;
    let other = tracking(store, "te-bin-other").await;
    let first = plain_run(store, bin.id, "first").await;
    let second = plain_run(store, bin.id, "second").await;
    let elsewhere = plain_run(store, other.id, "elsewhere").await;

    store
        .set_tracking_experiment_lifecycle(bin.id, Lifecycle::Deleted)
        .await
        .expect("delete");
    let deleted = store
        .tracking_experiment(bin.id)
        .await
        .expect("read")
        .expect("a deleted experiment is still found");
    assert_eq!(deleted.lifecycle, Lifecycle::Deleted);
    assert_eq!(
        tracking_by_name(store, "te-bin").await.id,
        bin.id,
        "and found by name"
    );
    for run_id in [&first.info.run_id, &second.info.run_id] {
        assert_eq!(run(store, run_id).await.info.lifecycle, Lifecycle::Deleted);
    }
    assert_eq!(
        run(store, &elsewhere.info.run_id).await.info.lifecycle,
        Lifecycle::Active
    );
    store
        .set_tracking_experiment_lifecycle(bin.id, Lifecycle::Deleted)
        .await
        .expect("deleting again changes nothing");
    let taken = store.create_tracking_experiment("te-bin", None, &[]).await;
    assert!(
        matches!(taken, Err(StoreError::AlreadyExists(_))),
        "a deleted experiment keeps its name: {taken:?}"
    );

    store
        .set_tracking_experiment_lifecycle(bin.id, Lifecycle::Active)
        .await
        .expect("restore");
    assert_eq!(
        tracking_by_name(store, "te-bin").await.lifecycle,
        Lifecycle::Active
    );
    for run_id in [&first.info.run_id, &second.info.run_id] {
        assert_eq!(run(store, run_id).await.info.lifecycle, Lifecycle::Active);
    }
}

pub(crate) async fn a_tuneflow_experiment_is_a_tracking_experiment_with_a_parent_run(
    store: &dyn Store,
) {
    let stored = experiment(store, "mirror").await;
    let tracking = tracking_by_name(store, "mirror").await;
    assert_eq!(tracking.experiment_id, Some(stored.id));
    assert_eq!(tracking.lifecycle, Lifecycle::Active);
    assert_eq!(
        tracking.artifact_location,
        format!("mlflow-artifacts:/{}", tracking.id)
    );

    let parent = parent_run(store, &stored).await;
    assert_eq!(parent.info.name, "mirror");
    assert_eq!(parent.info.experiment_id, tracking.id);
    assert_eq!(parent.info.trial_id, None);
    assert_eq!(parent.info.status, RunStatus::Scheduled);
    assert_eq!(parent.info.lifecycle, Lifecycle::Active);
    assert_eq!(parent.info.run_id.len(), 32);
    assert!(
        parent
            .info
            .run_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{}",
        parent.info.run_id
    );
    assert_eq!(
        parent.info.artifact_uri,
        format!(
            "{}/{}/artifacts",
            tracking.artifact_location, parent.info.run_id
        )
    );
    assert_eq!(value_of(&parent.tags, EXPERIMENT_TAG), Some("mirror"));
    assert_eq!(value_of(&parent.tags, RUN_NAME_TAG), Some("mirror"));
    assert!(parent.params.is_empty() && parent.metrics.is_empty());

    let refused = store
        .rename_tracking_experiment(tracking.id, "mirror-renamed")
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("mirror")),
        "the mirror of a tuneflow experiment keeps its name: {refused:?}"
    );
    let duplicate = store.create_tracking_experiment("mirror", None, &[]).await;
    assert!(
        matches!(duplicate, Err(StoreError::AlreadyExists(_))),
        "{duplicate:?}"
    );
}

pub(crate) async fn a_tuneflow_experiment_takes_over_an_mlflow_experiment_of_its_name(
    store: &dyn Store,
) {
    let made = store
        .create_tracking_experiment("adopted", None, &[tag("origin", "mlflow")])
        .await
        .expect("create");
    let earlier = plain_run(store, made.id, "by-hand").await;
    store
        .set_tracking_experiment_lifecycle(made.id, Lifecycle::Deleted)
        .await
        .expect("delete");

    let stored = experiment(store, "adopted").await;
    let linked = tracking_by_name(store, "adopted").await;
    assert_eq!(linked.id, made.id, "the same tracking experiment");
    assert_eq!(linked.experiment_id, Some(stored.id));
    assert_eq!(linked.lifecycle, Lifecycle::Active, "and in use again");
    assert_eq!(linked.tags, [tag("origin", "mlflow")]);
    let runs = store.runs(&[made.id]).await.expect("runs");
    assert_eq!(runs.len(), 2, "its run and the new parent run");
    assert!(runs.iter().any(|r| r.info.run_id == earlier.info.run_id));
    assert_eq!(parent_run(store, &stored).await.info.experiment_id, made.id);

    // Its trials' runs go there too.
    let created = trials(store, &stored, 1, TrialState::Pending).await;
    assert_eq!(
        trial_run(store, &created[0]).await.info.experiment_id,
        made.id
    );
}

pub(crate) async fn the_parent_run_follows_the_experiment_state(store: &dyn Store) {
    let stored = experiment(store, "parent-state").await;
    let status = |run: &Run| (run.info.status, run.info.end_time.is_some());
    store
        .set_experiment_state(stored.id, ExperimentState::Running, None, None)
        .await
        .expect("running");
    assert_eq!(
        status(&parent_run(store, &stored).await),
        (RunStatus::Running, false)
    );
    store
        .set_experiment_state(stored.id, ExperimentState::Interrupted, None, None)
        .await
        .expect("interrupted");
    assert_eq!(
        status(&parent_run(store, &stored).await),
        (RunStatus::Killed, true)
    );
    store
        .set_experiment_state(stored.id, ExperimentState::Running, None, None)
        .await
        .expect("resumed");
    assert_eq!(
        status(&parent_run(store, &stored).await),
        (RunStatus::Running, false),
        "a resumed experiment's run has not ended"
    );
    store
        .set_experiment_state(stored.id, ExperimentState::Succeeded, None, None)
        .await
        .expect("succeeded");
    let done = parent_run(store, &stored).await;
    assert_eq!(status(&done), (RunStatus::Finished, true));
    let completed = store
        .experiment("parent-state")
        .await
        .expect("read")
        .expect("stored")
        .completed_at;
    assert_eq!(done.info.end_time, completed);
    store
        .set_experiment_state(stored.id, ExperimentState::Failed, None, None)
        .await
        .expect("failed");
    assert_eq!(
        status(&parent_run(store, &stored).await),
        (RunStatus::Failed, true)
    );
}

pub(crate) async fn trial_runs_follow_their_trials(store: &dyn Store) {
    let stored = experiment(store, "trial-runs").await;
    let parent = parent_run(store, &stored).await;
    let pending = trials(store, &stored, 1, TrialState::Pending)
        .await
        .remove(0);
    let handed_out = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);

    let run = trial_run(store, &pending).await;
    assert_eq!(run.info.name, pending.name);
    assert_eq!(run.info.trial_id, Some(pending.id));
    assert_eq!(run.info.experiment_id, parent.info.experiment_id);
    assert_eq!(run.info.status, RunStatus::Scheduled);
    assert_eq!((run.info.start_time, run.info.end_time), (None, None));
    assert_eq!(
        run.params,
        [tag("n", "1"), tag("opt", "sgd"), tag("x", "0.1")],
        "the parameter values as tuneflow writes them, by key"
    );
    assert_eq!(
        value_of(&run.tags, PARENT_RUN_TAG),
        Some(parent.info.run_id.as_str())
    );
    assert_eq!(
        value_of(&run.tags, RUN_NAME_TAG),
        Some(pending.name.as_str())
    );
    assert_eq!(value_of(&run.tags, TRIAL_TAG), Some(pending.name.as_str()));

    let running = trial_run(store, &handed_out).await;
    assert_eq!(running.info.status, RunStatus::Running);
    assert_eq!(running.info.start_time, handed_out.started_at);
    assert_eq!(
        value_of(&running.params, "x"),
        Some(ParameterValue::Double(0.1 + 1.0 / 7.0).to_string().as_str())
    );

    store
        .start_trial(pending.id, stored.id)
        .await
        .expect("start");
    let started = trial_run(store, &pending).await;
    let trial = store
        .trial(stored.id, &pending.name)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(started.info.status, RunStatus::Running);
    assert_eq!(started.info.start_time, trial.started_at);
    assert_eq!(started.info.end_time, None);

    for (state, status) in [
        (TrialState::Succeeded, RunStatus::Finished),
        (TrialState::MetricsUnavailable, RunStatus::Failed),
        (TrialState::EarlyStopped, RunStatus::Killed),
    ] {
        // A final trial cannot be finished again: run it again first.
        if store
            .trial(stored.id, &pending.name)
            .await
            .expect("read")
            .is_some_and(|t| t.state.is_final())
        {
            store
                .requeue_trial(pending.id, stored.id)
                .await
                .expect("requeue");
            store
                .start_trial(pending.id, stored.id)
                .await
                .expect("start");
        }
        store
            .finish_trial(pending.id, stored.id, &outcome(state), &[])
            .await
            .expect("finish");
        let finished = trial_run(store, &pending).await;
        let trial = store
            .trial(stored.id, &pending.name)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(finished.info.status, status, "{state}");
        assert_eq!(finished.info.end_time, trial.completed_at);
        assert_eq!(finished.info.start_time, trial.started_at);
    }

    store
        .requeue_trial(pending.id, stored.id)
        .await
        .expect("requeue");
    let requeued = trial_run(store, &pending).await;
    assert_eq!(requeued.info.status, RunStatus::Scheduled);
    assert_eq!(
        (requeued.info.start_time, requeued.info.end_time),
        (None, None)
    );
    assert_eq!(requeued.params, run.params, "params stay");
    assert_eq!(requeued.info.run_id, run.info.run_id, "the same run");

    // The whole experiment's runs: the parent and both trials.
    let all = store
        .runs(&[parent.info.experiment_id])
        .await
        .expect("runs");
    assert_eq!(all.len(), 3);
    let children = all
        .iter()
        .filter(|r| value_of(&r.tags, PARENT_RUN_TAG) == Some(parent.info.run_id.as_str()))
        .count();
    assert_eq!(children, 2);
}

pub(crate) async fn requeue_drops_the_metrics_of_the_run(store: &dyn Store) {
    let stored = experiment(store, "requeue-metrics").await;
    let trial = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    let run_id = trial_run(store, &trial).await.info.run_id;
    store
        .add_observations(trial.id, &[observation("loss", 0, 0.9, 10)])
        .await
        .expect("observe");
    store
        .log_batch(
            &run_id,
            &[point("loss", f64::NAN, 11, 1), point("acc", 0.5, 11, 1)],
            &[],
            &[],
        )
        .await
        .expect("log");
    assert_eq!(run(store, &run_id).await.metrics.len(), 2);
    store
        .requeue_trial(trial.id, stored.id)
        .await
        .expect("requeue");
    assert!(run(store, &run_id).await.metrics.is_empty());
    for key in ["loss", "acc"] {
        assert!(
            store
                .metric_history(&run_id, key)
                .await
                .expect("history")
                .is_empty(),
            "{key}"
        );
    }
    // It starts over.
    store.start_trial(trial.id, stored.id).await.expect("start");
    store
        .add_observations(trial.id, &[observation("loss", 0, 0.7, 20)])
        .await
        .expect("observe");
    assert!(same_points(
        &run(store, &run_id).await.metrics,
        &[point("loss", 0.7, 20, 0)]
    ));
}

pub(crate) async fn observations_are_the_metric_history_of_trial_runs(store: &dyn Store) {
    let stored = experiment(store, "history").await;
    let trial = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    let run_id = trial_run(store, &trial).await.info.run_id;
    store
        .add_observations(
            trial.id,
            &[
                observation("loss", 1, 0.5, 20),
                observation("loss", 0, 0.9, 10),
                observation("accuracy", 0, 0.1, 10),
            ],
        )
        .await
        .expect("observe");
    store
        .finish_trial(
            trial.id,
            stored.id,
            &outcome(TrialState::Succeeded),
            &[observation("loss", 2, 0.25, 30)],
        )
        .await
        .expect("finish");

    let history = store
        .metric_history(&run_id, "loss")
        .await
        .expect("history");
    assert!(
        same_points(
            &history,
            &[
                point("loss", 0.9, 10, 0),
                point("loss", 0.5, 20, 1),
                point("loss", 0.25, 30, 2),
            ]
        ),
        "{history:?}"
    );
    assert!(
        store
            .metric_history(&run_id, "missing")
            .await
            .expect("history")
            .is_empty()
    );
    let latest = run(store, &run_id).await.metrics;
    assert!(
        same_points(
            &latest,
            &[point("accuracy", 0.1, 10, 0), point("loss", 0.25, 30, 2)]
        ),
        "by key: {latest:?}"
    );
    let listed = store
        .runs(&[trial_run(store, &trial).await.info.experiment_id])
        .await
        .expect("runs")
        .into_iter()
        .find(|r| r.info.run_id == run_id)
        .expect("listed");
    let mut metrics = listed.metrics;
    metrics.sort_by(|a, b| a.key.cmp(&b.key));
    assert!(same_points(&metrics, &latest), "{metrics:?}");
}

pub(crate) async fn log_batch_to_a_trial_run_records_observations(store: &dyn Store) {
    let stored = experiment(store, "logged").await;
    let trial = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    let run_id = trial_run(store, &trial).await.info.run_id;
    store
        .log_batch(
            &run_id,
            &[
                point("loss", 0.8, 1_000, 0),
                point("loss", f64::NAN, 2_000, 1),
                point("loss", 0.6, 3_000, 2),
                point("loss", f64::INFINITY, 4_000, 3),
            ],
            &[tag("batch_size", "32")],
            &[tag("note", "from mlflow")],
        )
        .await
        .expect("log");
    assert_eq!(
        store
            .observations(trial.id, Some("loss"))
            .await
            .expect("observations"),
        [
            observation("loss", 0, 0.8, 1_000),
            observation("loss", 2, 0.6, 3_000)
        ],
        "finite values become observations, the others do not"
    );
    let history = store
        .metric_history(&run_id, "loss")
        .await
        .expect("history");
    assert!(
        same_points(
            &history,
            &[
                point("loss", 0.8, 1_000, 0),
                point("loss", f64::NAN, 2_000, 1),
                point("loss", 0.6, 3_000, 2),
                point("loss", f64::INFINITY, 4_000, 3),
            ]
        ),
        "the history holds all of them: {history:?}"
    );
    let logged = run(store, &run_id).await;
    assert!(same_points(
        &logged.metrics,
        &[point("loss", f64::INFINITY, 4_000, 3)]
    ));
    assert_eq!(value_of(&logged.params, "batch_size"), Some("32"));
    assert_eq!(value_of(&logged.tags, "note"), Some("from mlflow"));
}

pub(crate) async fn nan_and_infinity_round_trip(store: &dyn Store) {
    let experiment = tracking(store, "te-nan").await;
    let run_id = plain_run(store, experiment.id, "nan").await.info.run_id;
    let points = [
        point("m", f64::NAN, 10, 0),
        point("m", f64::INFINITY, 10, 1),
        point("m", f64::NEG_INFINITY, 10, 2),
        point("m", -0.0, 10, 3),
        point("m", f64::MIN_POSITIVE, 10, 4),
        point("n", f64::NAN, 10, 0),
    ];
    store
        .log_batch(&run_id, &points, &[], &[])
        .await
        .expect("log");
    let history = store.metric_history(&run_id, "m").await.expect("history");
    assert!(same_points(&history, &points[..5]), "{history:?}");
    assert!(history[2].value == f64::NEG_INFINITY);
    let latest = run(store, &run_id).await.metrics;
    assert!(
        same_points(
            &latest,
            &[
                point("m", f64::MIN_POSITIVE, 10, 4),
                point("n", f64::NAN, 10, 0)
            ]
        ),
        "{latest:?}"
    );
}

pub(crate) async fn the_latest_metric_is_by_step_then_timestamp_then_value(store: &dyn Store) {
    let experiment = tracking(store, "te-latest").await;
    let run_id = plain_run(store, experiment.id, "latest").await.info.run_id;
    let run_id = run_id.as_str();
    let latest = |key: &'static str| async move {
        run(store, run_id)
            .await
            .metrics
            .into_iter()
            .find(|m| m.key == key)
            .expect("a latest value")
    };
    let log = |points: Vec<MetricPoint>| async move {
        store
            .log_batch(run_id, &points, &[], &[])
            .await
            .expect("log")
    };
    // A higher step wins over a later timestamp.
    log(vec![point("a", 1.0, 500, 2), point("a", 2.0, 900, 1)]).await;
    assert!(same_points(
        &[latest("a").await],
        &[point("a", 1.0, 500, 2)]
    ));
    // At the same step, the later timestamp wins.
    log(vec![point("a", 0.5, 600, 2)]).await;
    assert!(same_points(
        &[latest("a").await],
        &[point("a", 0.5, 600, 2)]
    ));
    log(vec![point("a", 9.0, 550, 2)]).await;
    assert!(same_points(
        &[latest("a").await],
        &[point("a", 0.5, 600, 2)]
    ));
    // At the same step and timestamp, the larger value wins, and NaN above all.
    log(vec![point("a", 0.7, 600, 2), point("a", 0.6, 600, 2)]).await;
    assert!(same_points(
        &[latest("a").await],
        &[point("a", 0.7, 600, 2)]
    ));
    log(vec![
        point("a", f64::NAN, 600, 2),
        point("a", f64::INFINITY, 600, 2),
    ])
    .await;
    assert!(same_points(
        &[latest("a").await],
        &[point("a", f64::NAN, 600, 2)]
    ));
    // Another key has its own latest value.
    log(vec![point("b", -1.0, 1, 0)]).await;
    assert!(same_points(&[latest("b").await], &[point("b", -1.0, 1, 0)]));
    assert!(same_points(
        &[latest("a").await],
        &[point("a", f64::NAN, 600, 2)]
    ));
}

pub(crate) async fn runs_are_created_listed_updated_and_tagged(store: &dyn Store) {
    let experiment = tracking(store, "te-runs").await;
    let info = store
        .create_run(&NewRun {
            experiment_id: experiment.id,
            name: "first".to_string(),
            user_id: "alice".to_string(),
            start_time: 1_000,
            tags: vec![tag("team", "vision"), tag(RUN_NAME_TAG, "ignored")],
        })
        .await
        .expect("create");
    assert_eq!(info.run_id.len(), 32);
    assert_eq!(info.experiment_id, experiment.id);
    assert_eq!(info.name, "first");
    assert_eq!(info.user_id, "alice");
    assert_eq!(info.status, RunStatus::Running);
    assert_eq!(info.lifecycle, Lifecycle::Active);
    assert_eq!((info.start_time, info.end_time), (Some(1_000), None));
    assert_eq!(
        info.artifact_uri,
        format!("{}/{}/artifacts", experiment.artifact_location, info.run_id)
    );
    assert_eq!(info.trial_id, None);
    let created = run(store, &info.run_id).await;
    assert_eq!(created.info, info);
    assert_eq!(
        created.tags,
        [tag(RUN_NAME_TAG, "first"), tag("team", "vision")],
        "the name's tag follows the name"
    );
    let second = plain_run(store, experiment.id, "second").await;
    assert_ne!(second.info.run_id, info.run_id);
    let elsewhere = tracking(store, "te-runs-other").await;
    plain_run(store, elsewhere.id, "other").await;
    assert_eq!(store.runs(&[experiment.id]).await.expect("runs").len(), 2);
    assert_eq!(
        store
            .runs(&[experiment.id, elsewhere.id, experiment.id])
            .await
            .expect("runs")
            .len(),
        3
    );
    assert!(
        store
            .runs(&[i64::MAX])
            .await
            .expect("no such experiment")
            .is_empty()
    );

    let updated = store
        .update_run(
            &info.run_id,
            &RunUpdate {
                status: Some(RunStatus::Finished),
                end_time: Some(2_000),
                name: Some("renamed".to_string()),
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.status, RunStatus::Finished);
    assert_eq!(updated.end_time, Some(2_000));
    assert_eq!(updated.name, "renamed");
    let read = run(store, &info.run_id).await;
    assert_eq!(read.info, updated);
    assert_eq!(value_of(&read.tags, RUN_NAME_TAG), Some("renamed"));
    let unchanged = store
        .update_run(&info.run_id, &RunUpdate::default())
        .await
        .expect("an empty update");
    assert_eq!(unchanged, updated);

    // Tags are set, replaced and deleted; the name's tag renames the run.
    store
        .log_batch(
            &info.run_id,
            &[],
            &[],
            &[
                tag("team", "nlp"),
                tag("new", "1"),
                tag(RUN_NAME_TAG, "by-tag"),
            ],
        )
        .await
        .expect("tags");
    let read = run(store, &info.run_id).await;
    assert_eq!(value_of(&read.tags, "team"), Some("nlp"));
    assert_eq!(value_of(&read.tags, "new"), Some("1"));
    assert_eq!(read.info.name, "by-tag");
    assert!(
        store
            .delete_run_tag(&info.run_id, "new")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_run_tag(&info.run_id, "new")
            .await
            .expect("delete again")
    );
    assert_eq!(value_of(&run(store, &info.run_id).await.tags, "new"), None);

    // A run is deleted and restored.
    store
        .set_run_lifecycle(&info.run_id, Lifecycle::Deleted)
        .await
        .expect("delete");
    assert_eq!(
        run(store, &info.run_id).await.info.lifecycle,
        Lifecycle::Deleted
    );
    assert_eq!(
        run(store, &second.info.run_id).await.info.lifecycle,
        Lifecycle::Active
    );
    store
        .set_run_lifecycle(&info.run_id, Lifecycle::Active)
        .await
        .expect("restore");
    assert_eq!(
        run(store, &info.run_id).await.info.lifecycle,
        Lifecycle::Active
    );

    // A trial's run takes a name and an end time but keeps the status of its trial.
    let stored = super::tests::experiment(store, "te-runs-trial").await;
    let trial = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    let run_id = trial_run(store, &trial).await.info.run_id;
    let updated = store
        .update_run(
            &run_id,
            &RunUpdate {
                status: Some(RunStatus::Failed),
                end_time: Some(5_000),
                name: Some("named".to_string()),
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.status, RunStatus::Running);
    assert_eq!(updated.end_time, Some(5_000));
    assert_eq!(updated.name, "named");
}

pub(crate) async fn params_are_written_once_and_a_conflict_writes_nothing(store: &dyn Store) {
    let experiment = tracking(store, "te-params").await;
    let run_id = plain_run(store, experiment.id, "params").await.info.run_id;
    store
        .log_batch(&run_id, &[], &[tag("lr", "0.1"), tag("depth", "3")], &[])
        .await
        .expect("log");
    store
        .log_batch(&run_id, &[], &[tag("lr", "0.1")], &[])
        .await
        .expect("the same value again is fine");
    let conflict = store
        .log_batch(
            &run_id,
            &[point("loss", 1.0, 1, 0)],
            &[tag("extra", "x"), tag("lr", "0.2")],
            &[tag("written", "no")],
        )
        .await;
    let Err(StoreError::Conflict(message)) = &conflict else {
        panic!("a changed param is a conflict: {conflict:?}");
    };
    for part in ["lr", "0.1", "0.2"] {
        assert!(message.contains(part), "{message}");
    }
    let read = run(store, &run_id).await;
    assert_eq!(read.params, [tag("depth", "3"), tag("lr", "0.1")]);
    assert_eq!(
        value_of(&read.tags, "written"),
        None,
        "nothing of the batch"
    );
    assert!(read.metrics.is_empty());
    assert!(
        store
            .metric_history(&run_id, "loss")
            .await
            .expect("history")
            .is_empty()
    );
    // On a plain run, params are text: the same number written another way is a change.
    let refused = store
        .log_batch(&run_id, &[], &[tag("lr", "1e-1")], &[])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    // Twice in one batch with two values.
    let twice = store
        .log_batch(&run_id, &[], &[tag("new", "a"), tag("new", "b")], &[])
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(value_of(&run(store, &run_id).await.params, "new"), None);
}

pub(crate) async fn a_trial_param_equal_as_a_number_is_the_same_param(store: &dyn Store) {
    let stored = experiment(store, "numeric-params").await;
    let new = NewTrial {
        index: 0,
        name: "numeric-params-0000".to_string(),
        assignment: vec![
            ParameterValue::Int(3),
            ParameterValue::Double(1e-5),
            ParameterValue::Categorical("adam".to_string()),
        ],
        state: TrialState::Running,
    };
    let trial = store
        .create_trials(stored.id, &stored.spec, &[new])
        .await
        .expect("create")
        .remove(0);
    let run_id = trial_run(store, &trial).await.info.run_id;
    assert_eq!(
        value_of(&run(store, &run_id).await.params, "x"),
        Some(ParameterValue::Double(1e-5).to_string().as_str())
    );
    store
        .log_batch(
            &run_id,
            &[],
            &[tag("x", "1e-05"), tag("n", "3.0"), tag("opt", "adam")],
            &[],
        )
        .await
        .expect("a client logs the trial's parameters as it got them");
    let conflict = store
        .log_batch(
            &run_id,
            &[point("loss", 1.0, 1, 0)],
            &[tag("x", "2e-05")],
            &[],
        )
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict(_))),
        "{conflict:?}"
    );
    let text = store
        .log_batch(&run_id, &[], &[tag("opt", "sgd")], &[])
        .await;
    assert!(matches!(text, Err(StoreError::Conflict(_))), "{text:?}");
    assert!(
        store
            .observations(trial.id, None)
            .await
            .expect("observations")
            .is_empty(),
        "the failed batch's metric was not recorded"
    );
}

pub(crate) async fn deleted_runs_and_experiments_refuse_changes(store: &dyn Store) {
    let experiment = tracking(store, "te-refuse").await;
    let run_id = plain_run(store, experiment.id, "refuse").await.info.run_id;
    store
        .set_run_lifecycle(&run_id, Lifecycle::Deleted)
        .await
        .expect("delete");
    let logged = store
        .log_batch(&run_id, &[point("loss", 1.0, 1, 0)], &[], &[])
        .await;
    assert!(matches!(logged, Err(StoreError::Conflict(_))), "{logged:?}");
    let updated = store.update_run(&run_id, &RunUpdate::default()).await;
    assert!(
        matches!(updated, Err(StoreError::Conflict(_))),
        "{updated:?}"
    );

    store
        .set_tracking_experiment_lifecycle(experiment.id, Lifecycle::Deleted)
        .await
        .expect("delete");
    let created = store
        .create_run(&NewRun {
            experiment_id: experiment.id,
            name: "late".to_string(),
            user_id: "alice".to_string(),
            start_time: 1,
            tags: Vec::new(),
        })
        .await;
    assert!(
        matches!(created, Err(StoreError::Conflict(_))),
        "{created:?}"
    );
    let renamed = store
        .rename_tracking_experiment(experiment.id, "te-refuse-2")
        .await;
    assert!(
        matches!(renamed, Err(StoreError::Conflict(_))),
        "{renamed:?}"
    );
    let tagged = store
        .set_tracking_experiment_tag(experiment.id, &tag("a", "b"))
        .await;
    assert!(matches!(tagged, Err(StoreError::Conflict(_))), "{tagged:?}");
}

pub(crate) async fn missing_runs_and_experiments_are_errors(store: &dyn Store) {
    let no_run = "0123456789abcdef0123456789abcdef";
    let is_missing_run = |result: &Result<_, StoreError>| matches!(result, Err(StoreError::Missing { what: "run", key }) if key == no_run);
    assert!(store.run(no_run).await.expect("read").is_none());
    let logged = store.log_batch(no_run, &[], &[], &[]).await;
    assert!(is_missing_run(&logged), "{logged:?}");
    let updated = store.update_run(no_run, &RunUpdate::default()).await;
    assert!(
        matches!(&updated, Err(StoreError::Missing { what: "run", .. })),
        "{updated:?}"
    );
    let deleted = store.set_run_lifecycle(no_run, Lifecycle::Deleted).await;
    assert!(is_missing_run(&deleted), "{deleted:?}");
    let untagged = store.delete_run_tag(no_run, "a").await;
    assert!(
        matches!(&untagged, Err(StoreError::Missing { what: "run", .. })),
        "{untagged:?}"
    );
    let history = store.metric_history(no_run, "loss").await;
    assert!(
        matches!(&history, Err(StoreError::Missing { what: "run", .. })),
        "{history:?}"
    );
    let message = store
        .metric_history(no_run, "loss")
        .await
        .expect_err("missing")
        .to_string();
    assert!(message.contains(no_run), "{message}");
    assert_eq!(store.trial_run_id(i64::MAX).await.expect("read"), None);

    let no_experiment = i64::MAX;
    let is_missing_experiment = |result: &Result<(), StoreError>| {
        matches!(
            result,
            Err(StoreError::Missing { what: "tracking experiment", key }) if key == &no_experiment.to_string()
        )
    };
    assert!(
        store
            .tracking_experiment(no_experiment)
            .await
            .expect("read")
            .is_none()
    );
    let renamed = store
        .rename_tracking_experiment(no_experiment, "te-nothing")
        .await;
    assert!(is_missing_experiment(&renamed), "{renamed:?}");
    let deleted = store
        .set_tracking_experiment_lifecycle(no_experiment, Lifecycle::Deleted)
        .await;
    assert!(is_missing_experiment(&deleted), "{deleted:?}");
    let tagged = store
        .set_tracking_experiment_tag(no_experiment, &tag("a", "b"))
        .await;
    assert!(is_missing_experiment(&tagged), "{tagged:?}");
    let created = store
        .create_run(&NewRun {
            experiment_id: no_experiment,
            name: "nowhere".to_string(),
            user_id: "alice".to_string(),
            start_time: 1,
            tags: Vec::new(),
        })
        .await;
    assert!(
        matches!(
            &created,
            Err(StoreError::Missing {
                what: "tracking experiment",
                ..
            })
        ),
        "{created:?}"
    );
}

pub(crate) async fn deleting_a_tuneflow_experiment_deletes_its_tracking_data(store: &dyn Store) {
    let stored = experiment(store, "te-cascade").await;
    let kept = experiment(store, "te-cascade-kept").await;
    let created = trials(store, &stored, 2, TrialState::Running).await;
    let other = trials(store, &kept, 1, TrialState::Running).await.remove(0);
    let tracking_id = tracking_by_name(store, "te-cascade").await.id;
    let by_hand = plain_run(store, tracking_id, "by-hand").await.info.run_id;
    let mut run_ids = vec![by_hand, parent_run(store, &stored).await.info.run_id];
    for trial in &created {
        let run_id = trial_run(store, trial).await.info.run_id;
        store
            .log_batch(
                &run_id,
                &[point("loss", 0.5, 1, 0), point("loss", f64::NAN, 2, 1)],
                &[tag("p", "1")],
                &[tag("t", "1")],
            )
            .await
            .expect("log");
        run_ids.push(run_id);
    }
    let other_run = trial_run(store, &other).await.info.run_id;

    assert!(store.delete_experiment("te-cascade").await.expect("delete"));
    assert!(
        store
            .tracking_experiment(tracking_id)
            .await
            .expect("read")
            .is_none()
    );
    assert!(store.runs(&[tracking_id]).await.expect("runs").is_empty());
    for run_id in &run_ids {
        assert!(store.run(run_id).await.expect("read").is_none(), "{run_id}");
    }
    for trial in &created {
        assert_eq!(store.trial_run_id(trial.id).await.expect("read"), None);
    }
    assert!(store.run(&other_run).await.expect("read").is_some());
    assert!(
        store
            .tracking_experiment_by_name("te-cascade-kept")
            .await
            .expect("read")
            .is_some()
    );
    // The name is free again, for both kinds of experiment.
    experiment(store, "te-cascade").await;
    assert_eq!(
        tracking_by_name(store, "te-cascade").await.experiment_id,
        store
            .experiment("te-cascade")
            .await
            .expect("read")
            .map(|e| e.id)
    );
}

/// What a store made before the tracking tables holds once it is opened and they are filled
/// in. Each backend writes the same rows the way an old version did (two experiments, "old"
/// and "Default", "old" interrupted at 1900 with a Succeeded trial with observations and a
/// Pending one, "Default" with an EarlyStopped trial), opens it, and calls this.
pub(crate) async fn check_backfilled(store: &dyn Store) {
    let tag = |run: &crate::store::tracking::Run, key: &str| {
        run.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.clone())
    };

    // "old" is a new tracking experiment, "Default" is MLflow's Default.
    let tracking = store
        .tracking_experiment_by_name("old")
        .await
        .expect("read")
        .expect("backfilled");
    assert_eq!(tracking.id, 1);
    assert_eq!(tracking.experiment_id, Some(1));
    assert_eq!(tracking.artifact_location, "mlflow-artifacts:/1");
    assert_eq!((tracking.created_at, tracking.updated_at), (1000, 1000));
    let default = store
        .tracking_experiment(DEFAULT_EXPERIMENT_ID)
        .await
        .expect("read")
        .expect("Default");
    assert_eq!(default.name, "Default");
    assert_eq!(default.experiment_id, Some(2), "linked to the tuneflow one");

    let runs = store.runs(&[1]).await.expect("runs");
    assert_eq!(runs.len(), 3, "a parent run and two trial runs");
    let parent = runs
        .iter()
        .find(|r| r.info.trial_id.is_none())
        .expect("parent");
    assert_eq!(parent.info.name, "old");
    assert_eq!(parent.info.status, RunStatus::Killed);
    assert_eq!(parent.info.start_time, Some(1000));
    assert_eq!(
        parent.info.end_time,
        Some(1900),
        "the time of its last state change"
    );
    assert_eq!(tag(parent, EXPERIMENT_TAG).as_deref(), Some("old"));
    assert_eq!(tag(parent, RUN_NAME_TAG).as_deref(), Some("old"));
    assert_eq!(
        parent.info.artifact_uri,
        format!("mlflow-artifacts:/1/{}/artifacts", parent.info.run_id)
    );
    let mut ids: Vec<&str> = runs.iter().map(|r| r.info.run_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct ids");
    for run in &runs {
        let id = &run.info.run_id;
        assert!(
            id.len() == 32 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{id}"
        );
        assert_eq!(&id[12..13], "4", "shaped like a version 4 UUID: {id}");
        assert!(matches!(&id[16..17], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(
            run.info.artifact_uri,
            format!("mlflow-artifacts:/1/{id}/artifacts")
        );
    }

    let trials = store.trials(1).await.expect("trials");
    let done_id = store
        .trial_run_id(trials[0].id)
        .await
        .expect("read")
        .expect("a run");
    let done = store.run(&done_id).await.expect("read").expect("run");
    assert_eq!(done.info.name, "old-0000");
    assert_eq!(done.info.status, RunStatus::Finished);
    assert_eq!(done.info.lifecycle, Lifecycle::Active);
    assert_eq!(
        (done.info.start_time, done.info.end_time),
        (Some(1200), Some(1300))
    );
    assert_eq!(
        done.params,
        [
            KeyValue::new("n", "3"),
            KeyValue::new("opt", "adam"),
            KeyValue::new("x", "0.00001")
        ],
        "written as tuneflow writes parameter values"
    );
    assert_eq!(tag(&done, PARENT_RUN_TAG), Some(parent.info.run_id.clone()));
    assert_eq!(tag(&done, TRIAL_TAG).as_deref(), Some("old-0000"));
    let point = |key: &str, value, timestamp, step| MetricPoint {
        key: key.to_string(),
        value,
        timestamp,
        step,
    };
    assert_eq!(
        done.metrics,
        [point("accuracy", 0.1, 1201, 0), point("loss", 0.5, 1203, 2)],
        "the latest values of the stored observations"
    );
    assert_eq!(
        store
            .metric_history(&done_id, "loss")
            .await
            .expect("history"),
        [
            point("loss", 0.9, 1201, 0),
            point("loss", 0.7, 1202, 1),
            point("loss", 0.5, 1203, 2),
            point("loss", 0.4, 1203, 2)
        ]
    );
    let pending_id = store
        .trial_run_id(trials[1].id)
        .await
        .expect("read")
        .expect("a run");
    let pending = store.run(&pending_id).await.expect("read").expect("run");
    assert_eq!(pending.info.status, RunStatus::Scheduled);
    assert_eq!(
        pending.params.iter().find(|p| p.key == "x"),
        Some(&KeyValue::new("x", "1"))
    );

    let in_default = store.runs(&[DEFAULT_EXPERIMENT_ID]).await.expect("runs");
    assert_eq!(in_default.len(), 2);
    let stopped = in_default
        .iter()
        .find(|r| r.info.trial_id.is_some())
        .expect("trial run");
    assert_eq!(stopped.info.status, RunStatus::Killed);

    // New experiments and trials carry on from there, and the Default experiment outlives the
    // tuneflow experiment called "Default".
    let next = conformance::experiment(store, "after").await;
    assert_eq!(
        store
            .tracking_experiment_by_name("after")
            .await
            .expect("read")
            .map(|e| e.id),
        Some(2)
    );
    store
        .create_trials(
            next.id,
            &next.spec,
            &[conformance::new_trial("after", 0, TrialState::Running)],
        )
        .await
        .expect("trials");
    assert!(store.delete_experiment("Default").await.expect("delete"));
    let default = store
        .tracking_experiment(DEFAULT_EXPERIMENT_ID)
        .await
        .expect("read")
        .expect("Default stays");
    assert_eq!(default.experiment_id, None);
    assert!(
        store
            .runs(&[DEFAULT_EXPERIMENT_ID])
            .await
            .expect("runs")
            .is_empty(),
        "the runs of the deleted experiment went with it"
    );
}
