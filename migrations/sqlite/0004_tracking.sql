-- MLflow's tracking model: tracking experiments, runs, their params, tags and metrics.
--
-- Every tuneflow experiment is a tracking experiment of the same name with one parent run;
-- every trial is a run (child of that parent) whose metrics are the trial's observations.
-- Runs and experiments made by plain MLflow clients live in the same tables with no
-- tuneflow row behind them. Times are microseconds since the Unix epoch, like everywhere else.

CREATE TABLE tracking_experiments (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,   -- the MLflow experiment id
    name              TEXT    NOT NULL UNIQUE,
    artifact_location TEXT    NOT NULL,
    lifecycle         TEXT    NOT NULL DEFAULT 'active' CHECK (lifecycle IN ('active', 'deleted')),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    -- The tuneflow experiment this one mirrors, if any.
    experiment_id     INTEGER UNIQUE REFERENCES experiments(id) ON DELETE CASCADE
);

-- MLflow's "Default" experiment, id 0, which every store has. AUTOINCREMENT numbers the
-- next ones from 1.
INSERT INTO tracking_experiments (id, name, artifact_location, created_at, updated_at)
VALUES (0, 'Default', 'mlflow-artifacts:/0',
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER),
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));

CREATE TABLE tracking_experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES tracking_experiments(id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;

CREATE TABLE runs (
    run_uuid      TEXT    PRIMARY KEY CHECK (length(run_uuid) = 32),
    experiment_id INTEGER NOT NULL REFERENCES tracking_experiments(id) ON DELETE CASCADE,
    -- The trial this run is, if any.
    trial_id      INTEGER UNIQUE REFERENCES trials(id) ON DELETE CASCADE,
    -- The tuneflow experiment this run is the parent run of, if any.
    parent_of     INTEGER UNIQUE REFERENCES experiments(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    status        TEXT    NOT NULL
                  CHECK (status IN ('RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED')),
    lifecycle     TEXT    NOT NULL DEFAULT 'active' CHECK (lifecycle IN ('active', 'deleted')),
    start_time    INTEGER,
    end_time      INTEGER,
    artifact_uri  TEXT    NOT NULL
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time);

CREATE TABLE run_params (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;

CREATE TABLE run_tags (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;

-- Metric values logged through MLflow that are not a trial's observations: every value of a
-- run without a trial, and the non-finite values of a trial's run (the finite ones are rows
-- of `observations`). SQLite stores a NaN REAL as NULL, so NaN is `is_nan = 1` with a NULL
-- value; ±infinity are stored as they are.
CREATE TABLE run_metrics (
    run_uuid  TEXT    NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    step      INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value     REAL,
    is_nan    INTEGER NOT NULL DEFAULT 0 CHECK ((is_nan = 1) = (value IS NULL))
);
CREATE INDEX run_metrics_by_key ON run_metrics (run_uuid, key, step, timestamp);

-- The latest value of each metric of each run (MLflow's order: step, then timestamp, then
-- value with NaN above every number), kept up to date by the triggers below on every insert
-- into `run_metrics` and `observations`, so that listing runs reads one row per metric
-- instead of their whole history. Deleting history (a requeued trial) deletes these rows
-- too, in the same transaction (the store does it).
CREATE TABLE run_latest_metrics (
    run_uuid  TEXT    NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    step      INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value     REAL,
    is_nan    INTEGER NOT NULL DEFAULT 0 CHECK ((is_nan = 1) = (value IS NULL)),
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;

CREATE TRIGGER run_metrics_latest AFTER INSERT ON run_metrics
BEGIN
    INSERT INTO run_latest_metrics (run_uuid, key, step, timestamp, value, is_nan)
    VALUES (NEW.run_uuid, NEW.key, NEW.step, NEW.timestamp, NEW.value, NEW.is_nan)
    ON CONFLICT (run_uuid, key) DO UPDATE
    SET step = excluded.step, timestamp = excluded.timestamp, value = excluded.value,
        is_nan = excluded.is_nan
    WHERE (excluded.step, excluded.timestamp, excluded.is_nan) > (step, timestamp, is_nan)
       OR ((excluded.step, excluded.timestamp, excluded.is_nan) = (step, timestamp, is_nan)
           AND excluded.value > value);
END;

CREATE TRIGGER observations_latest AFTER INSERT ON observations
BEGIN
    INSERT INTO run_latest_metrics (run_uuid, key, step, timestamp, value, is_nan)
    SELECT run_uuid, NEW.metric, NEW.step, NEW.timestamp, NEW.value, 0
    FROM runs WHERE trial_id = NEW.trial_id
    ON CONFLICT (run_uuid, key) DO UPDATE
    SET step = excluded.step, timestamp = excluded.timestamp, value = excluded.value,
        is_nan = excluded.is_nan
    WHERE (excluded.step, excluded.timestamp, excluded.is_nan) > (step, timestamp, is_nan)
       OR ((excluded.step, excluded.timestamp, excluded.is_nan) = (step, timestamp, is_nan)
           AND excluded.value > value);
END;

-- The Default experiment outlives a tuneflow experiment named "Default" that is linked to it:
-- unlink it before the delete cascades (the runs of that experiment still go).
CREATE TRIGGER experiments_keep_default BEFORE DELETE ON experiments
BEGIN
    UPDATE tracking_experiments SET experiment_id = NULL WHERE id = 0 AND experiment_id = OLD.id;
END;

-- Backfill: every stored experiment becomes a tracking experiment with a parent run, every
-- trial a run (its params are filled in by the store's code after this file, which formats
-- parameter values as tuneflow does), every observation part of its run's latest metrics.
-- Run ids are random 32-hex-digit ids shaped like version 4 UUIDs.

INSERT INTO tracking_experiments (name, artifact_location, created_at, updated_at, experiment_id)
SELECT name, '', created_at, created_at, id FROM experiments WHERE name <> 'Default' ORDER BY id;
UPDATE tracking_experiments SET artifact_location = 'mlflow-artifacts:/' || id
WHERE artifact_location = '';
UPDATE tracking_experiments SET experiment_id = (SELECT id FROM experiments WHERE name = 'Default')
WHERE id = 0;

INSERT INTO runs (run_uuid, experiment_id, parent_of, name, user_id, status, start_time,
                  end_time, artifact_uri)
SELECT lower(hex(randomblob(6)) || '4' || substr(hex(randomblob(2)), 2)
             || substr('89ab', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2)
             || hex(randomblob(6))),
       t.id, e.id, e.name, 'tuneflow',
       CASE e.state WHEN 'Created' THEN 'SCHEDULED' WHEN 'Running' THEN 'RUNNING'
                    WHEN 'Succeeded' THEN 'FINISHED' WHEN 'Failed' THEN 'FAILED'
                    ELSE 'KILLED' END,
       e.created_at,
       CASE WHEN e.state IN ('Succeeded', 'Failed', 'Interrupted') THEN
           COALESCE(e.completed_at,
                    (SELECT MAX(v.timestamp) FROM events v
                     WHERE v.experiment_id = e.id AND v.trial_id IS NULL),
                    e.started_at, e.created_at)
       END,
       t.artifact_location
FROM experiments e JOIN tracking_experiments t ON t.experiment_id = e.id;

INSERT INTO runs (run_uuid, experiment_id, trial_id, name, user_id, status, start_time,
                  end_time, artifact_uri)
SELECT lower(hex(randomblob(6)) || '4' || substr(hex(randomblob(2)), 2)
             || substr('89ab', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2)
             || hex(randomblob(6))),
       p.experiment_id, tr.id, tr.name, 'tuneflow',
       CASE tr.state WHEN 'Pending' THEN 'SCHEDULED' WHEN 'Running' THEN 'RUNNING'
                     WHEN 'Succeeded' THEN 'FINISHED'
                     WHEN 'Failed' THEN 'FAILED' WHEN 'MetricsUnavailable' THEN 'FAILED'
                     ELSE 'KILLED' END,
       tr.started_at, tr.completed_at, p.artifact_uri
FROM trials tr JOIN runs p ON p.parent_of = tr.experiment_id;

-- Both kinds of run took the experiment's artifact location; each gets its own place in it.
UPDATE runs SET artifact_uri = artifact_uri || '/' || run_uuid || '/artifacts';

INSERT INTO run_tags (run_uuid, key, value)
SELECT run_uuid, 'mlflow.runName', name FROM runs;
INSERT INTO run_tags (run_uuid, key, value)
SELECT run_uuid, 'tuneflow.experiment', name FROM runs WHERE parent_of IS NOT NULL;
INSERT INTO run_tags (run_uuid, key, value)
SELECT r.run_uuid, 'mlflow.parentRunId', p.run_uuid
FROM runs r JOIN trials tr ON tr.id = r.trial_id JOIN runs p ON p.parent_of = tr.experiment_id;
INSERT INTO run_tags (run_uuid, key, value)
SELECT run_uuid, 'tuneflow.trial', name FROM runs WHERE trial_id IS NOT NULL;

INSERT INTO run_latest_metrics (run_uuid, key, step, timestamp, value, is_nan)
SELECT run_uuid, metric, step, timestamp, value, 0 FROM (
    SELECT r.run_uuid, o.metric, o.step, o.timestamp, o.value,
           row_number() OVER (PARTITION BY o.trial_id, o.metric
                              ORDER BY o.step DESC, o.timestamp DESC, o.value DESC) AS latest
    FROM observations o JOIN runs r ON r.trial_id = o.trial_id
) WHERE latest = 1;
