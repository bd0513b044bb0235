-- A hook build's preparation is claimed with a lease, so that on several replicas each
-- trigger is prepared by one of them at a time, and one whose preparer died (its lease
-- ran out) is taken by any replica's periodic sweep rather than at the next start.
ALTER TABLE build_triggers ADD COLUMN claimed_by TEXT;
ALTER TABLE build_triggers ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE build_triggers ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX build_triggers_claimed_until ON build_triggers (claimed_until);
