-- tuneflow store schema (SQLite). Timestamps are microseconds since the Unix epoch (UTC).

CREATE TABLE experiments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    spec          TEXT    NOT NULL,          -- the validated ExperimentSpec, JSON
    document      TEXT    NOT NULL,          -- the document as the user wrote it
    seed          INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    reason        TEXT,
    message       TEXT,
    owner         TEXT,                      -- "host:pid" of the process running it, if any
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    completed_at  INTEGER
);

CREATE TABLE trials (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,          -- 0, 1, 2, ... within the experiment, no gaps
    name          TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    parameters    TEXT    NOT NULL,          -- JSON object name -> value, in space order
    objective     REAL,
    message       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    completed_at  INTEGER,
    UNIQUE (experiment_id, idx),
    UNIQUE (experiment_id, name)
);
CREATE INDEX trials_by_state ON trials (experiment_id, state);

CREATE TABLE observations (
    trial_id      INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    metric        TEXT    NOT NULL,
    step          INTEGER NOT NULL,
    value         REAL    NOT NULL,
    timestamp     INTEGER NOT NULL
);
CREATE INDEX observations_by_metric ON observations (trial_id, metric, step);

CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    trial_id      INTEGER REFERENCES trials(id) ON DELETE CASCADE,
    timestamp     INTEGER NOT NULL,
    kind          TEXT    NOT NULL,          -- the new state, e.g. "Running", "Succeeded"
    message       TEXT
);
CREATE INDEX events_by_experiment ON events (experiment_id, timestamp);
