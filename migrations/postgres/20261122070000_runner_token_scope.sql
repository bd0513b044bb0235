-- A runner token's scope: labels imposed on the runner (a JSON object; the runner's own
-- labels may not contradict them and routing uses them) and the repositories whose
-- workflows it may claim (a JSON array of `owner/name` or `owner/*`). NULL: unscoped.
ALTER TABLE api_tokens ADD COLUMN runner_labels TEXT;
ALTER TABLE api_tokens ADD COLUMN runner_repos TEXT;

-- The runners connected to each replica, so that every replica lists them and counts
-- them when it says what a pending workflow waits for. A replica refreshes `last_seen`
-- of its rows every few seconds; rows not refreshed for two leases are ignored and
-- removed (their replica is gone).
CREATE TABLE runners (
    connection   TEXT PRIMARY KEY,
    runner_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    labels       TEXT NOT NULL,
    repos        TEXT,
    capacity     BIGINT NOT NULL,
    replica      TEXT NOT NULL,
    connected_at BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL
);
CREATE INDEX runners_replica ON runners (replica);
CREATE INDEX runners_last_seen ON runners (last_seen);
