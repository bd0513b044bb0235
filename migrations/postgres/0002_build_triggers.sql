-- Hook builds recorded before their pipeline was read: the trigger facts (JSON) the
-- preparation needs. A row exists while its build is being prepared; one left by a crash
-- is prepared again at the next start.
CREATE TABLE build_triggers (
    build_id    BIGINT PRIMARY KEY REFERENCES builds (id) ON DELETE CASCADE,
    facts       TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
