//! The store's contract as tests that every backend must pass.
//!
//! Each test is an async function taking a fresh, empty `&dyn Store`; a backend runs them all
//! with [`conformance_tests!`] and its own constructor (see `sqlite/tests.rs`). Experiment
//! names are unique per test, so a backend may also run them against one shared database.
//! [`reopening_keeps_everything`] takes a function that opens the same store again.

use std::future::Future;

use tuneflow_algorithms::ParameterValue;

use super::{
    CurvePoint, Experiment, ExperimentState, NewTrial, Observation, Store, StoreError, Trial,
    TrialOutcome, TrialState, now_micros,
};
use crate::spec::{self, ExperimentSpec};

/// Defines one `#[tokio::test]` per conformance test. `$fresh` is an async function returning
/// a fixture with a `store(&self) -> &dyn Store` method, holding a new empty store, or with
/// `store(&self) -> Option<&dyn Store>`, `None` skipping the test (see [`Skip`]).
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::store::tests::conformance_tests!(
            @each $fresh;
            experiments_are_created_found_listed_and_deleted,
            a_duplicate_experiment_name_is_refused,
            update_spec_replaces_the_spec,
            experiment_states_stamp_their_times,
            claims_hold_against_live_owners_only,
            new_trials_start_pending_or_running,
            create_trials_is_all_or_none,
            create_trials_enforces_the_caps_and_refuses_taken_indices,
            a_final_trial_cannot_be_finished_again,
            a_trial_starts_finishes_and_restarts,
            finish_trial_writes_observations_and_state_together,
            a_failed_finish_leaves_the_trial_as_it_was,
            requeue_drops_observations_and_results,
            observations_come_back_by_step_time_and_arrival,
            a_trial_is_found_by_name_within_its_experiment,
            large_observation_batches_round_trip,
            deleting_an_experiment_deletes_its_trials_and_observations,
            concurrent_operations_are_all_recorded,
            the_document_comes_back_as_written,
            changed_trials_are_found_by_their_events,
            curves_come_back_by_trial_and_step,
            a_trials_events_come_back_oldest_first,
            stop_requests_are_found_from_their_time_on,
            the_tally_adds_up_the_trials,
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
                $crate::store::tests::$name(store).await;
            }
        )+
    };
}
pub(crate) use conformance_tests;

/// What a fixture's `store()` may return to [`conformance_tests!`]: a store, or, for a backend
/// whose server the environment does not name, nothing (the test is skipped; the fixture
/// says so).
pub(crate) trait Skip<'a> {
    /// The store to test, if any.
    fn or_skip(self) -> Option<&'a dyn Store>;
}

impl<'a> Skip<'a> for &'a dyn Store {
    fn or_skip(self) -> Option<&'a dyn Store> {
        Some(self)
    }
}

impl<'a> Skip<'a> for Option<&'a dyn Store> {
    fn or_skip(self) -> Option<&'a dyn Store> {
        self
    }
}

/// A spec with an int, a double and a categorical parameter.
pub(crate) fn spec(name: &str) -> ExperimentSpec {
    let text = format!(
        "apiVersion: tuneflow.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         objective: {{type: minimize, objectiveMetricName: loss}}\n  \
         algorithm: {{algorithmName: random}}\n  maxTrialCount: 1000\n  parallelTrialCount: 1000\n  parameters:\n    \
         - {{name: n, parameterType: int, feasibleSpace: {{min: 1, max: 9}}}}\n    \
         - {{name: x, parameterType: double, feasibleSpace: {{min: 0, max: 1}}}}\n    \
         - {{name: opt, parameterType: categorical, feasibleSpace: {{list: [sgd, adam]}}}}\n"
    );
    spec::parse_str(&text, "store-test.yaml").expect("valid spec")
}

/// Stores a new experiment called `name` with [`spec`].
pub(crate) async fn experiment(store: &dyn Store, name: &str) -> Experiment {
    store
        .create_experiment(&spec(name), &format!("document of {name}"), 42)
        .await
        .expect("create experiment")
}

/// A new trial of an experiment named `experiment`.
pub(crate) fn new_trial(experiment: &str, index: u64, state: TrialState) -> NewTrial {
    NewTrial {
        index,
        name: format!("{experiment}-{index:04}"),
        assignment: vec![
            ParameterValue::Int(index as i64 + 1),
            ParameterValue::Double(0.1 + index as f64 / 7.0),
            ParameterValue::Categorical(
                if index.is_multiple_of(2) {
                    "sgd"
                } else {
                    "adam"
                }
                .to_string(),
            ),
        ],
        state,
    }
}

/// Tries to record one trial at `index`.
async fn one_trial(
    store: &dyn Store,
    experiment: &Experiment,
    spec: &ExperimentSpec,
    index: u64,
) -> Result<Vec<Trial>, StoreError> {
    let new = [new_trial(&experiment.name, index, TrialState::Pending)];
    store.create_trials(experiment.id, spec, &new).await
}

/// Records `count` trials in `state` and returns them.
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

fn observation(metric: &str, step: i64, value: f64, timestamp: i64) -> Observation {
    Observation {
        metric: metric.to_string(),
        step,
        value,
        timestamp,
    }
}

fn succeeded(objective: f64) -> TrialOutcome {
    TrialOutcome {
        state: TrialState::Succeeded,
        objective: Some(objective),
        message: Some(format!("loss = {objective}")),
        step: Some(7),
    }
}

/// The stored trial with `id`.
async fn trial(store: &dyn Store, experiment: &Experiment, id: i64) -> Trial {
    store
        .trials(experiment.id)
        .await
        .expect("trials")
        .into_iter()
        .find(|t| t.id == id)
        .expect("the trial is stored")
}

/// An owner check for [`Store::claim_experiment`] that says every owner runs.
fn alive(_: &str) -> bool {
    true
}

/// An owner check that says no owner runs any more.
fn dead(_: &str) -> bool {
    false
}

pub(crate) async fn experiments_are_created_found_listed_and_deleted(store: &dyn Store) {
    let first = experiment(store, "crud-first").await;
    assert_eq!(first.state, ExperimentState::Created);
    assert_eq!(first.seed, 42);
    assert!(first.started_at.is_none() && first.completed_at.is_none());
    let second = store
        .create_experiment(&spec("crud-second"), "doc", u64::MAX)
        .await
        .expect("create");
    assert_eq!(
        store.experiment("crud-first").await.expect("read"),
        Some(first.clone())
    );
    let read = store.experiment("crud-second").await.expect("read");
    assert_eq!(read, Some(second.clone()), "a seed above i64::MAX survives");
    assert_eq!(store.experiment("crud-missing").await.expect("read"), None);

    let names: Vec<String> = store
        .experiments()
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n.starts_with("crud-"))
        .collect();
    assert_eq!(names, ["crud-first", "crud-second"], "oldest first");

    assert!(store.delete_experiment("crud-first").await.expect("delete"));
    assert!(!store.delete_experiment("crud-first").await.expect("delete"));
    assert_eq!(store.experiment("crud-first").await.expect("read"), None);
    assert!(
        !store
            .delete_experiment("crud-missing")
            .await
            .expect("delete")
    );
    assert!(
        store
            .experiment("crud-second")
            .await
            .expect("read")
            .is_some()
    );
}

pub(crate) async fn a_duplicate_experiment_name_is_refused(store: &dyn Store) {
    let stored = experiment(store, "dup").await;
    let error = store
        .create_experiment(&spec("dup"), "another document", 7)
        .await
        .expect_err("the name is taken");
    assert!(
        matches!(&error, StoreError::AlreadyExists(name) if name == "dup"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "an experiment named `dup` already exists in the store"
    );
    assert_eq!(store.experiment("dup").await.expect("read"), Some(stored));
}

pub(crate) async fn update_spec_replaces_the_spec(store: &dyn Store) {
    let stored = experiment(store, "respec").await;
    let mut raised = stored.spec.clone();
    raised.max_trial_count = Some(50);
    store
        .update_spec(stored.id, &raised, "the new document")
        .await
        .expect("update");
    let read = store
        .experiment("respec")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(read.spec, raised);
    assert_eq!(read.spec.max_trial_count, Some(50));
    assert_eq!(read.created_at, stored.created_at);
}

pub(crate) async fn experiment_states_stamp_their_times(store: &dyn Store) {
    let stored = experiment(store, "states").await;
    store
        .set_experiment_state(stored.id, ExperimentState::Running, None, None)
        .await
        .expect("running");
    let running = store
        .experiment("states")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(running.state, ExperimentState::Running);
    let started = running.started_at.expect("started_at is stamped");
    assert!(started >= stored.created_at);
    assert_eq!(running.completed_at, None);

    store
        .set_experiment_state(
            stored.id,
            ExperimentState::Interrupted,
            Some("Interrupted"),
            Some("stopped by the user"),
        )
        .await
        .expect("interrupted");
    let interrupted = store
        .experiment("states")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(interrupted.state, ExperimentState::Interrupted);
    assert_eq!(interrupted.reason.as_deref(), Some("Interrupted"));
    assert_eq!(interrupted.message.as_deref(), Some("stopped by the user"));
    assert_eq!(interrupted.started_at, Some(started), "the start is kept");
    assert_eq!(
        interrupted.completed_at, None,
        "an interruption is no completion"
    );

    store
        .set_experiment_state(stored.id, ExperimentState::Running, None, None)
        .await
        .expect("running again");
    let resumed = store
        .experiment("states")
        .await
        .expect("read")
        .expect("stored");
    assert!(resumed.started_at.expect("started") >= started);
    assert_eq!((resumed.reason, resumed.message), (None, None));

    store
        .set_experiment_state(
            stored.id,
            ExperimentState::Succeeded,
            Some("MaxTrialsReached"),
            Some("10 trials finished"),
        )
        .await
        .expect("succeeded");
    let done = store
        .experiment("states")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(done.state, ExperimentState::Succeeded);
    assert_eq!(done.reason.as_deref(), Some("MaxTrialsReached"));
    let completed = done.completed_at.expect("completed_at is stamped");
    assert!(completed >= resumed.started_at.expect("started"));
    assert_eq!(done.started_at, resumed.started_at);

    store
        .set_experiment_state(
            stored.id,
            ExperimentState::Failed,
            Some("TooManyFailures"),
            None,
        )
        .await
        .expect("failed");
    let failed = store
        .experiment("states")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(failed.state, ExperimentState::Failed);
    assert!(failed.completed_at.is_some());
    assert_eq!(failed.message, None);
}

pub(crate) async fn claims_hold_against_live_owners_only(store: &dyn Store) {
    let stored = experiment(store, "claims").await;
    let id = stored.id;
    assert_eq!(
        store
            .claim_experiment(id, "host:1", alive)
            .await
            .expect("claim"),
        None
    );
    assert_eq!(
        store
            .claim_experiment(id, "host:1", alive)
            .await
            .expect("claim again"),
        None,
        "the owner may claim again"
    );
    assert_eq!(
        store
            .claim_experiment(id, "host:2", alive)
            .await
            .expect("claim"),
        Some("host:1".to_string()),
        "a live owner keeps it"
    );
    assert_eq!(
        store
            .claim_experiment(id, "host:2", dead)
            .await
            .expect("claim"),
        None,
        "a dead owner's claim is taken over"
    );
    store
        .release_experiment(id, "host:1")
        .await
        .expect("release");
    assert_eq!(
        store
            .claim_experiment(id, "host:3", alive)
            .await
            .expect("claim"),
        Some("host:2".to_string()),
        "only the owner releases"
    );
    store
        .release_experiment(id, "host:2")
        .await
        .expect("release");
    assert_eq!(
        store
            .claim_experiment(id, "host:3", alive)
            .await
            .expect("claim"),
        None
    );
}

pub(crate) async fn new_trials_start_pending_or_running(store: &dyn Store) {
    let stored = experiment(store, "first-states").await;
    let pending = trials(store, &stored, 2, TrialState::Pending).await;
    let running = trials(store, &stored, 1, TrialState::Running).await;
    let read = store.trials(stored.id).await.expect("trials");
    assert_eq!(read.len(), 3);
    let returned: Vec<Trial> = pending.iter().chain(&running).cloned().collect();
    assert_eq!(read, returned, "create_trials returns what is stored");
    for (index, trial) in read.iter().enumerate() {
        assert_eq!(trial.index, index as u64, "by index");
        assert_eq!(trial.name, format!("first-states-{index:04}"));
        assert_eq!(
            trial.assignment,
            new_trial("first-states", index as u64, TrialState::Pending).assignment,
            "int, double and categorical values round-trip"
        );
        assert_eq!(
            (trial.objective, &trial.message, &trial.handle),
            (None, &None, &None)
        );
        assert_eq!(trial.completed_at, None);
    }
    for trial in &read[..2] {
        assert_eq!(trial.state, TrialState::Pending);
        assert_eq!(trial.attempts, 0);
        assert_eq!(trial.started_at, None);
    }
    let handed_out = &read[2];
    assert_eq!(handed_out.state, TrialState::Running);
    assert_eq!(
        handed_out.attempts, 1,
        "a trial handed out at creation ran once"
    );
    assert_eq!(handed_out.started_at, Some(handed_out.created_at));
}

pub(crate) async fn create_trials_is_all_or_none(store: &dyn Store) {
    let stored = experiment(store, "atomic").await;
    let first = trials(store, &stored, 2, TrialState::Pending).await;

    // A batch whose second trial reuses a stored name.
    let mut taken_name = new_trial("atomic", 3, TrialState::Pending);
    taken_name.name = first[0].name.clone();
    let batch = [new_trial("atomic", 2, TrialState::Pending), taken_name];
    assert!(
        store
            .create_trials(stored.id, &stored.spec, &batch)
            .await
            .is_err(),
        "a taken name fails"
    );
    // A batch whose second trial reuses a stored index.
    let mut taken_index = new_trial("atomic", 3, TrialState::Running);
    taken_index.index = 1;
    taken_index.name = "atomic-other".to_string();
    let batch = [new_trial("atomic", 2, TrialState::Running), taken_index];
    assert!(
        store
            .create_trials(stored.id, &stored.spec, &batch)
            .await
            .is_err(),
        "a taken index fails"
    );
    // A batch that repeats a name within itself.
    let mut repeated = new_trial("atomic", 3, TrialState::Pending);
    repeated.name = "atomic-0002".to_string();
    let batch = [new_trial("atomic", 2, TrialState::Pending), repeated];
    assert!(
        store
            .create_trials(stored.id, &stored.spec, &batch)
            .await
            .is_err(),
        "a name repeated in the batch fails"
    );

    assert_eq!(
        store.trials(stored.id).await.expect("trials"),
        first,
        "a failed batch leaves nothing behind"
    );
    // The same names and indexes in another experiment are fine.
    let other = experiment(store, "atomic-other-experiment").await;
    let batch = [new_trial("atomic", 0, TrialState::Pending)];
    store
        .create_trials(other.id, &other.spec, &batch)
        .await
        .expect("names are unique per experiment only");
    // And the next batch of the first experiment still goes in.
    let next = trials(store, &stored, 2, TrialState::Pending).await;
    assert_eq!(next[0].index, 2);
    assert_eq!(store.trials(stored.id).await.expect("trials").len(), 4);
}

pub(crate) async fn a_trial_starts_finishes_and_restarts(store: &dyn Store) {
    let stored = experiment(store, "lifecycle").await;
    let created = trials(store, &stored, 1, TrialState::Pending)
        .await
        .remove(0);
    store
        .start_trial(created.id, stored.id)
        .await
        .expect("start");
    let started = trial(store, &stored, created.id).await;
    assert_eq!(started.state, TrialState::Running);
    assert_eq!(started.attempts, 1);
    assert!(started.started_at.expect("started_at") >= created.created_at);

    store
        .set_trial_handle(created.id, "4242")
        .await
        .expect("handle");
    assert_eq!(
        trial(store, &stored, created.id).await.handle.as_deref(),
        Some("4242")
    );

    store
        .finish_trial(created.id, stored.id, &succeeded(0.25), &[])
        .await
        .expect("finish");
    let finished = trial(store, &stored, created.id).await;
    assert_eq!(finished.state, TrialState::Succeeded);
    assert_eq!(finished.objective, Some(0.25));
    assert_eq!(finished.message.as_deref(), Some("loss = 0.25"));
    assert_eq!(finished.handle, None, "the handle is cleared when it stops");
    assert!(finished.completed_at.expect("completed_at") >= started.started_at.expect("started"));
    assert_eq!(finished.attempts, 1);
    assert_eq!(finished.step, Some(7), "the step it reached is kept");

    store
        .set_trial_handle(created.id, "4343")
        .await
        .expect("handle");
    store
        .start_trial(created.id, stored.id)
        .await
        .expect("start again");
    let restarted = trial(store, &stored, created.id).await;
    assert_eq!(restarted.state, TrialState::Running);
    assert_eq!(restarted.attempts, 2, "each start counts");
    assert_eq!(restarted.handle, None, "a new start has no handle yet");

    let failed = TrialOutcome {
        state: TrialState::Failed,
        objective: None,
        message: Some("exit code 3".to_string()),
        step: None,
    };
    store
        .finish_trial(created.id, stored.id, &failed, &[])
        .await
        .expect("finish");
    let finished = trial(store, &stored, created.id).await;
    assert_eq!(finished.state, TrialState::Failed);
    assert_eq!(
        finished.objective, None,
        "the new outcome replaces the old one"
    );
    assert_eq!(finished.message.as_deref(), Some("exit code 3"));
}

pub(crate) async fn finish_trial_writes_observations_and_state_together(store: &dyn Store) {
    let stored = experiment(store, "finish-with").await;
    let running = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    store
        .add_observations(running.id, &[observation("loss", 0, 0.9, 10)])
        .await
        .expect("observe");
    let last = [
        observation("loss", 1, 0.5, 20),
        observation("accuracy", 1, 0.8, 20),
    ];
    store
        .finish_trial(running.id, stored.id, &succeeded(0.5), &last)
        .await
        .expect("finish");
    let finished = trial(store, &stored, running.id).await;
    assert_eq!(finished.state, TrialState::Succeeded);
    let observations = store.observations(running.id, None).await.expect("read");
    assert_eq!(
        observations,
        [
            observation("loss", 0, 0.9, 10),
            observation("loss", 1, 0.5, 20),
            observation("accuracy", 1, 0.8, 20),
        ]
    );
}

pub(crate) async fn a_failed_finish_leaves_the_trial_as_it_was(store: &dyn Store) {
    let stored = experiment(store, "finish-fails").await;
    let running = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    store
        .add_observations(running.id, &[observation("loss", 0, 0.9, 10)])
        .await
        .expect("observe");
    // The state change's event names an experiment that does not exist: the write fails
    // after the observations and the trial's row were written, so all of it must go.
    let missing_experiment = stored.id + 1_000_000;
    let result = store
        .finish_trial(
            running.id,
            missing_experiment,
            &succeeded(0.1),
            &[observation("loss", 1, 0.1, 20)],
        )
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(trial(store, &stored, running.id).await, running);
    assert_eq!(
        store.observations(running.id, None).await.expect("read"),
        [observation("loss", 0, 0.9, 10)]
    );
    // The store works on afterwards.
    store
        .finish_trial(running.id, stored.id, &succeeded(0.1), &[])
        .await
        .expect("finish");
}

pub(crate) async fn requeue_drops_observations_and_results(store: &dyn Store) {
    let stored = experiment(store, "requeue").await;
    let running = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    let kept = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    store
        .set_trial_handle(running.id, "99")
        .await
        .expect("handle");
    store
        .add_observations(running.id, &[observation("loss", 0, 0.9, 10)])
        .await
        .expect("observe");
    store
        .add_observations(kept.id, &[observation("loss", 0, 0.7, 10)])
        .await
        .expect("observe");
    let killed = TrialOutcome {
        state: TrialState::Killed,
        objective: Some(0.9),
        message: Some("interrupted".to_string()),
        step: None,
    };
    store
        .finish_trial(running.id, stored.id, &killed, &[])
        .await
        .expect("finish");

    store
        .requeue_trial(running.id, stored.id)
        .await
        .expect("requeue");
    let requeued = trial(store, &stored, running.id).await;
    assert_eq!(requeued.state, TrialState::Pending);
    assert_eq!(
        (requeued.objective, &requeued.message, &requeued.handle),
        (None, &None, &None)
    );
    assert_eq!((requeued.started_at, requeued.completed_at), (None, None));
    assert_eq!(requeued.attempts, 1, "attempts are kept");
    assert_eq!(requeued.created_at, running.created_at);
    assert!(
        store
            .observations(running.id, None)
            .await
            .expect("read")
            .is_empty(),
        "its observations are dropped"
    );
    assert_eq!(
        store.observations(kept.id, None).await.expect("read").len(),
        1,
        "other trials keep theirs"
    );
}

pub(crate) async fn a_trial_is_found_by_name_within_its_experiment(store: &dyn Store) {
    let one = experiment(store, "by-name-one").await;
    let two = experiment(store, "by-name-two").await;
    let created = trials(store, &one, 2, TrialState::Running).await;
    let others = trials(store, &two, 2, TrialState::Running).await;
    let all = store.trials(one.id).await.expect("trials");
    let found = store
        .trial(one.id, &created[1].name)
        .await
        .expect("trial")
        .expect("present");
    assert_eq!(found, all[1], "the same trial as the listing holds");
    assert_eq!(
        store.trial(one.id, &others[1].name).await.expect("trial"),
        None,
        "another experiment's trial is not found"
    );
    assert_eq!(store.trial(one.id, "nope").await.expect("trial"), None);
}

pub(crate) async fn observations_come_back_by_step_time_and_arrival(store: &dyn Store) {
    let stored = experiment(store, "order").await;
    let running = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    let other = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    store
        .add_observations(
            running.id,
            &[
                observation("loss", 2, 0.3, 30),
                observation("loss", 0, 0.9, 50),
                observation("accuracy", 0, 0.1, 50),
            ],
        )
        .await
        .expect("observe");
    store
        .add_observations(
            running.id,
            &[
                observation("loss", 1, 0.6, 40),
                observation("loss", 1, 0.5, 20),
                observation("loss", 1, 0.55, 40),
                observation("loss", 2, 0.2, 30),
            ],
        )
        .await
        .expect("observe");
    store
        .add_observations(other.id, &[observation("loss", 0, 1.0, 1)])
        .await
        .expect("observe");
    store
        .add_observations(running.id, &[])
        .await
        .expect("an empty batch is fine");

    let all = store.observations(running.id, None).await.expect("read");
    assert_eq!(
        all,
        [
            observation("loss", 0, 0.9, 50),
            observation("accuracy", 0, 0.1, 50),
            observation("loss", 1, 0.5, 20),
            observation("loss", 1, 0.6, 40),
            observation("loss", 1, 0.55, 40),
            observation("loss", 2, 0.3, 30),
            observation("loss", 2, 0.2, 30),
        ],
        "by step, then timestamp, then arrival"
    );
    let losses = store
        .observations(running.id, Some("loss"))
        .await
        .expect("read");
    assert_eq!(losses.len(), 6);
    assert!(losses.iter().all(|o| o.metric == "loss"));
    assert_eq!(
        store
            .observations(running.id, Some("accuracy"))
            .await
            .expect("read"),
        [observation("accuracy", 0, 0.1, 50)]
    );
    assert!(
        store
            .observations(running.id, Some("missing"))
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .observations(i64::MAX, None)
            .await
            .expect("read")
            .is_empty()
    );
}

pub(crate) async fn large_observation_batches_round_trip(store: &dyn Store) {
    let stored = experiment(store, "flood").await;
    let running = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    // More rows than one multi-row statement takes, and odd values.
    let batch: Vec<Observation> = (0..2503)
        .map(|i| {
            let value = match i {
                0 => f64::MIN_POSITIVE / 4.0,
                1 => -f64::MAX,
                _ => (i as f64).sqrt() / 3.0 - 1.0 / 7.0,
            };
            observation(&format!("m{}", i % 3), i / 3, value, i)
        })
        .collect();
    store
        .add_observations(running.id, &batch)
        .await
        .expect("observe");
    let read = store.observations(running.id, None).await.expect("read");
    assert_eq!(read, batch, "every value round-trips exactly, in order");
    store
        .finish_trial(running.id, stored.id, &succeeded(0.1), &batch[..1001])
        .await
        .expect("finish with a large batch");
    assert_eq!(
        store
            .observations(running.id, Some("m0"))
            .await
            .expect("read")
            .len(),
        835 + 334
    );
}

pub(crate) async fn deleting_an_experiment_deletes_its_trials_and_observations(store: &dyn Store) {
    let stored = experiment(store, "cascade").await;
    let kept = experiment(store, "cascade-kept").await;
    let running = trials(store, &stored, 2, TrialState::Running).await;
    let other = trials(store, &kept, 1, TrialState::Running).await.remove(0);
    for trial in running.iter().chain([&other]) {
        store
            .add_observations(trial.id, &[observation("loss", 0, 0.5, 1)])
            .await
            .expect("observe");
    }
    store
        .finish_trial(running[0].id, stored.id, &succeeded(0.5), &[])
        .await
        .expect("finish");

    assert!(store.delete_experiment("cascade").await.expect("delete"));
    for trial in &running {
        assert!(
            store
                .observations(trial.id, None)
                .await
                .expect("read")
                .is_empty(),
            "observations go with the experiment"
        );
    }
    assert!(
        store
            .trials(stored.id)
            .await
            .map(|t| t.is_empty())
            .unwrap_or(true),
        "trials go with the experiment"
    );
    assert_eq!(store.trials(kept.id).await.expect("trials").len(), 1);
    assert_eq!(
        store
            .observations(other.id, None)
            .await
            .expect("read")
            .len(),
        1
    );

    // The name is free again, and the new experiment starts empty.
    let again = experiment(store, "cascade").await;
    assert!(store.trials(again.id).await.expect("trials").is_empty());
    trials(store, &again, 2, TrialState::Pending).await;
}

pub(crate) async fn concurrent_operations_are_all_recorded(store: &dyn Store) {
    let stored = experiment(store, "concurrent").await;
    let created = trials(store, &stored, 16, TrialState::Running).await;
    let work = created.iter().map(|trial| async move {
        for step in 0..5 {
            store
                .add_observations(trial.id, &[observation("loss", step, step as f64, step)])
                .await?;
        }
        store
            .finish_trial(trial.id, stored.id, &succeeded(trial.index as f64), &[])
            .await?;
        store.trials(stored.id).await.map(|_| ())
    });
    for result in futures_join_all(work).await {
        result.expect("operation");
    }
    let finished = store.trials(stored.id).await.expect("trials");
    assert!(finished.iter().all(|t| t.state == TrialState::Succeeded));
    for trial in &finished {
        assert_eq!(trial.objective, Some(trial.index as f64));
        assert_eq!(
            store
                .observations(trial.id, None)
                .await
                .expect("read")
                .len(),
            5
        );
    }
}

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Everything written through one store is there when the same store is opened again.
/// `open` opens the store under test, the same one each time.
pub(crate) async fn reopening_keeps_everything<S, F, Fut>(open: F)
where
    S: AsRef<dyn Store>,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let (stored, written, observations) = {
        let opened = open().await;
        let store = opened.as_ref();
        let stored = experiment(store, "reopen").await;
        store
            .set_experiment_state(stored.id, ExperimentState::Running, None, None)
            .await
            .expect("running");
        let written = trials(store, &stored, 3, TrialState::Running).await;
        let observations = [
            observation("loss", 0, 0.5, 7),
            observation("loss", 1, 0.25, 8),
        ];
        store
            .finish_trial(written[0].id, stored.id, &succeeded(0.25), &observations)
            .await
            .expect("finish");
        store
            .set_trial_handle(written[1].id, "123")
            .await
            .expect("handle");
        let stored = store
            .experiment("reopen")
            .await
            .expect("read")
            .expect("stored");
        let written = store.trials(stored.id).await.expect("trials");
        (stored, written, observations)
    };
    let opened = open().await;
    let store = opened.as_ref();
    assert_eq!(
        store.experiment("reopen").await.expect("read"),
        Some(stored.clone())
    );
    assert_eq!(store.trials(stored.id).await.expect("trials"), written);
    assert_eq!(
        store.observations(written[0].id, None).await.expect("read"),
        observations
    );
    // And it takes new writes where the last one stopped.
    let next = trials(store, &stored, 1, TrialState::Pending).await;
    assert_eq!(next[0].index, 3);
}

pub(crate) async fn create_trials_enforces_the_caps_and_refuses_taken_indices(store: &dyn Store) {
    let experiment = experiment(store, "caps").await;
    let mut capped = experiment.spec.clone();
    capped.max_trial_count = Some(3);
    capped.parallel_trial_count = 2;
    let three: Vec<NewTrial> = (0..3)
        .map(|i| new_trial("caps", i, TrialState::Pending))
        .collect();
    let refused = store.create_trials(experiment.id, &capped, &three).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("parallelTrialCount (2)")),
        "{refused:?}"
    );
    assert!(
        store
            .trials(experiment.id)
            .await
            .expect("trials")
            .is_empty()
    );
    let two = store
        .create_trials(experiment.id, &capped, &three[..2])
        .await
        .expect("two fit");
    let taken = one_trial(store, &experiment, &experiment.spec, 1).await;
    assert!(
        matches!(&taken, Err(StoreError::Conflict(m)) if m.contains("another writer")),
        "{taken:?}"
    );
    let full = one_trial(store, &experiment, &capped, 2).await;
    assert!(matches!(full, Err(StoreError::Conflict(_))), "{full:?}");
    store
        .finish_trial(two[0].id, experiment.id, &succeeded(1.0), &[])
        .await
        .expect("finish");
    one_trial(store, &experiment, &capped, 2)
        .await
        .expect("a finished trial frees a parallel slot");
    store
        .finish_trial(two[1].id, experiment.id, &succeeded(2.0), &[])
        .await
        .expect("finish");
    let over = one_trial(store, &experiment, &capped, 3).await;
    assert!(
        matches!(&over, Err(StoreError::Conflict(m)) if m.contains("maxTrialCount (3)")),
        "{over:?}"
    );
    assert_eq!(store.trials(experiment.id).await.expect("trials").len(), 3);
}

pub(crate) async fn a_final_trial_cannot_be_finished_again(store: &dyn Store) {
    let stored = experiment(store, "finish-twice").await;
    let trial = trials(store, &stored, 1, TrialState::Running)
        .await
        .remove(0);
    store
        .finish_trial(trial.id, stored.id, &succeeded(0.5), &[])
        .await
        .expect("first finish");
    let failed = TrialOutcome {
        state: TrialState::Failed,
        objective: None,
        message: Some("lease expired".to_string()),
        step: None,
    };
    let again = store
        .finish_trial(
            trial.id,
            stored.id,
            &failed,
            &[observation("loss", 9, 9.0, 99)],
        )
        .await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(m)) if m.contains("Succeeded already")),
        "{again:?}"
    );
    let read = store
        .trial(stored.id, &trial.name)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(read.state, TrialState::Succeeded);
    assert_eq!(read.objective, Some(0.5));
    assert!(
        store
            .observations(trial.id, None)
            .await
            .expect("obs")
            .is_empty()
    );
}

pub(crate) async fn the_document_comes_back_as_written(store: &dyn Store) {
    let experiment = experiment(store, "document").await;
    assert_eq!(
        store.document(experiment.id).await.expect("document"),
        Some("document of document".to_string())
    );
    store
        .update_spec(
            experiment.id,
            &experiment.spec,
            "# edited\nkind: Experiment\n",
        )
        .await
        .expect("update");
    assert_eq!(
        store
            .document(experiment.id)
            .await
            .expect("document")
            .as_deref(),
        Some("# edited\nkind: Experiment\n")
    );
    assert_eq!(store.document(-7).await.expect("document"), None);
}

pub(crate) async fn changed_trials_are_found_by_their_events(store: &dyn Store) {
    let experiment = experiment(store, "changes").await;
    let other = experiment_named(store, "changes-other").await;
    let before = now_micros();
    let first = trials(store, &experiment, 3, TrialState::Pending).await;
    trials(store, &other, 2, TrialState::Pending).await;
    let all = store
        .trials_changed_since(experiment.id, before)
        .await
        .expect("changes");
    assert_eq!(
        all.iter().map(|t| t.index).collect::<Vec<_>>(),
        [0, 1, 2],
        "every new trial is a change, and only this experiment's"
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let cursor = now_micros();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .start_trial(first[1].id, experiment.id)
        .await
        .expect("start");
    let changed = store
        .trials_changed_since(experiment.id, cursor)
        .await
        .expect("changes");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(
        (changed[0].index, changed[0].state),
        (1, TrialState::Running)
    );
    // Observations are not changes of the trial.
    store
        .add_observations(first[1].id, &[observation("loss", 0, 0.5, now_micros())])
        .await
        .expect("observe");
    let later = now_micros() + 1;
    assert!(
        store
            .trials_changed_since(experiment.id, later)
            .await
            .expect("changes")
            .is_empty()
    );
}

/// Stores a new experiment called `name` with [`spec`] (another name than [`experiment`]'s
/// fixture, in the same store).
async fn experiment_named(store: &dyn Store, name: &str) -> Experiment {
    experiment(store, name).await
}

pub(crate) async fn curves_come_back_by_trial_and_step(store: &dyn Store) {
    let experiment = experiment(store, "curves").await;
    let other = experiment_named(store, "curves-other").await;
    let stored = trials(store, &experiment, 3, TrialState::Running).await;
    let foreign = trials(store, &other, 1, TrialState::Running).await;
    // Out of order on purpose: trial 2 first, steps descending.
    store
        .add_observations(
            stored[2].id,
            &[
                observation("loss", 1, 0.21, 10),
                observation("loss", 0, 0.20, 11),
                observation("acc", 0, 0.9, 12),
            ],
        )
        .await
        .expect("observe");
    store
        .add_observations(
            stored[0].id,
            &[
                observation("loss", 0, 0.00, 13),
                observation("loss", 1, 0.01, 14),
            ],
        )
        .await
        .expect("observe");
    store
        .add_observations(foreign[0].id, &[observation("loss", 0, 9.0, 15)])
        .await
        .expect("observe");
    let point = |trial, step, value| CurvePoint { trial, step, value };
    assert_eq!(
        store
            .curves(experiment.id, "loss", None)
            .await
            .expect("curves"),
        [
            point(0, 0, 0.00),
            point(0, 1, 0.01),
            point(2, 0, 0.20),
            point(2, 1, 0.21)
        ]
    );
    assert_eq!(
        store
            .curves(experiment.id, "loss", Some(&[2, 1]))
            .await
            .expect("curves"),
        [point(2, 0, 0.20), point(2, 1, 0.21)]
    );
    assert_eq!(
        store
            .curves(experiment.id, "acc", None)
            .await
            .expect("curves"),
        [point(2, 0, 0.9)]
    );
    assert!(
        store
            .curves(experiment.id, "loss", Some(&[]))
            .await
            .expect("curves")
            .is_empty()
    );
    assert!(
        store
            .curves(experiment.id, "missing", None)
            .await
            .expect("curves")
            .is_empty()
    );
}

pub(crate) async fn a_trials_events_come_back_oldest_first(store: &dyn Store) {
    let experiment = experiment(store, "trial-events").await;
    let trial = trials(store, &experiment, 1, TrialState::Pending)
        .await
        .remove(0);
    store
        .start_trial(trial.id, experiment.id)
        .await
        .expect("start");
    store
        .finish_trial(trial.id, experiment.id, &succeeded(0.5), &[])
        .await
        .expect("finish");
    let events = store.trial_events(trial.id).await.expect("events");
    let states: Vec<&str> = events.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(states, ["Pending", "Running", "Succeeded"]);
    assert_eq!(events[2].message.as_deref(), Some("loss = 0.5"));
    assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
}

pub(crate) async fn stop_requests_are_found_from_their_time_on(store: &dyn Store) {
    let experiment = experiment(store, "stop").await;
    let other = experiment_named(store, "stop-other").await;
    let before = now_micros();
    assert_eq!(
        store
            .stop_requested(experiment.id, before)
            .await
            .expect("look"),
        None
    );
    store
        .request_stop(experiment.id, "stop requested by a test")
        .await
        .expect("request");
    let requested = store
        .stop_requested(experiment.id, before)
        .await
        .expect("look")
        .expect("the request is found");
    assert!(requested >= before);
    assert_eq!(
        store.stop_requested(other.id, before).await.expect("look"),
        None,
        "a request is for its experiment only"
    );
    assert_eq!(
        store
            .stop_requested(experiment.id, requested + 1)
            .await
            .expect("look"),
        None,
        "a request older than the look is not found"
    );
    assert!(
        store.request_stop(-5, "no such experiment").await.is_err(),
        "a request for an experiment that does not exist fails"
    );
}

pub(crate) async fn the_tally_adds_up_the_trials(store: &dyn Store) {
    use tuneflow_algorithms::Direction;
    let experiment = experiment(store, "tally").await;
    let empty = store
        .tally(experiment.id, Direction::Minimize)
        .await
        .expect("tally");
    assert_eq!(empty, super::TrialTally::default());
    let stored = trials(store, &experiment, 7, TrialState::Running).await;
    let finish = |state, objective: Option<f64>, step: Option<i64>| TrialOutcome {
        state,
        objective,
        message: None,
        step,
    };
    let outcomes = [
        finish(TrialState::Succeeded, Some(0.5), Some(9)),
        finish(TrialState::Succeeded, Some(0.2), Some(9)),
        finish(TrialState::Succeeded, Some(0.2), Some(7)),
        finish(TrialState::EarlyStopped, Some(0.9), Some(3)),
        finish(TrialState::EarlyStopped, None, None),
        finish(TrialState::Failed, None, None),
    ];
    for (trial, outcome) in stored.iter().zip(&outcomes) {
        store
            .finish_trial(trial.id, experiment.id, outcome, &[])
            .await
            .expect("finish");
    }
    let minimum = store
        .tally(experiment.id, Direction::Minimize)
        .await
        .expect("tally");
    let mut states = minimum.states.clone();
    states.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(
        states,
        [
            (TrialState::EarlyStopped, 2),
            (TrialState::Failed, 1),
            (TrialState::Running, 1),
            (TrialState::Succeeded, 3),
        ]
    );
    assert_eq!(
        minimum.best.as_ref().map(|t| t.index),
        Some(1),
        "the lowest index among equal objectives"
    );
    assert_eq!(minimum.steps_saved, Some((9 - 3) + 9));
    let maximum = store
        .tally(experiment.id, Direction::Maximize)
        .await
        .expect("tally");
    assert_eq!(maximum.best.as_ref().map(|t| t.index), Some(0));
    assert_eq!(maximum.best.as_ref().and_then(|t| t.objective), Some(0.5));
}
