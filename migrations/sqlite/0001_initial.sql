-- Gantry schema (SQLite). Times are unix milliseconds; JSON is TEXT.

CREATE TABLE repos (
    id                INTEGER PRIMARY KEY,
    owner             TEXT NOT NULL,
    name              TEXT NOT NULL,
    forge             TEXT NOT NULL,
    clone_url         TEXT NOT NULL,
    webhook_secret    TEXT NOT NULL,
    config_path       TEXT NOT NULL,
    is_trusted        BOOLEAN NOT NULL DEFAULT FALSE,
    timeout_minutes   BIGINT NOT NULL,
    is_private        BOOLEAN NOT NULL DEFAULT FALSE,
    last_build_number BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE builds (
    id            INTEGER PRIMARY KEY,
    repo_id       BIGINT NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    number        BIGINT NOT NULL,
    event         TEXT NOT NULL,
    git_ref       TEXT NOT NULL,
    sha           TEXT NOT NULL,
    before_sha    TEXT NOT NULL,
    message       TEXT NOT NULL,
    author        TEXT NOT NULL,
    sender        TEXT NOT NULL,
    status        TEXT NOT NULL,
    error         TEXT,
    parent_id     BIGINT REFERENCES builds (id) ON DELETE SET NULL,
    deploy_target TEXT,
    diagnostics   TEXT,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    UNIQUE (repo_id, number)
);
CREATE INDEX builds_status ON builds (status);

CREATE TABLE workflows (
    id          INTEGER PRIMARY KEY,
    build_id    BIGINT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    started_at  BIGINT,
    finished_at BIGINT
);
CREATE INDEX workflows_build ON workflows (build_id);

CREATE TABLE steps (
    id                INTEGER PRIMARY KEY,
    workflow_id       BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    needs             TEXT NOT NULL,
    position          BIGINT NOT NULL,
    status            TEXT NOT NULL,
    exit_code         BIGINT,
    error             TEXT,
    runner_id         TEXT,
    started_at        BIGINT,
    finished_at       BIGINT,
    approved_by       TEXT,
    approval_at       BIGINT,
    approval_decision TEXT,
    log_lines         BIGINT NOT NULL DEFAULT 0,
    log_bytes         BIGINT NOT NULL DEFAULT 0,
    log_truncated     BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (workflow_id, name)
);

-- No foreign key: a per-row key check halves the ingest rate. append_logs checks (and
-- locks) the step once per batch, and delete_repo removes the lines itself.
CREATE TABLE log_lines (
    step_id    BIGINT NOT NULL,
    number     BIGINT NOT NULL,
    stream     TEXT NOT NULL,
    text       TEXT NOT NULL,
    elapsed_ms BIGINT NOT NULL,
    PRIMARY KEY (step_id, number)
) WITHOUT ROWID;

CREATE TABLE queue_items (
    id          INTEGER PRIMARY KEY,
    workflow_id BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    build_id    BIGINT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    repo_id     BIGINT NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    labels      TEXT NOT NULL,
    state       TEXT NOT NULL,
    runner_id   TEXT,
    lease_until BIGINT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    enqueued_at BIGINT NOT NULL,
    error       TEXT
);
CREATE INDEX queue_items_state ON queue_items (state, id);
CREATE INDEX queue_items_build ON queue_items (build_id);
-- A workflow is in the queue at most once at a time.
CREATE UNIQUE INDEX queue_items_active_workflow ON queue_items (workflow_id)
    WHERE state IN ('pending', 'claimed');

CREATE TABLE hook_deliveries (
    repo_id     BIGINT NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, delivery_id)
);

CREATE TABLE secrets (
    repo_id    BIGINT NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, name)
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    role         TEXT NOT NULL,
    scope        TEXT,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
