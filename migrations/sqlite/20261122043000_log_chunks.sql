-- Logs as chunks of consecutive lines, one row per runner batch (up to 1,024 lines or
-- 64 KiB) instead of one row per line: a row, an index entry and a WAL record per line
-- kept ingest below 50 MB/s. The layout of a chunk is described in
-- crates/gantry-store/src/sql/logs/chunk.rs. The key is the last number: reading after N
-- seeks the first chunk ending above N. Chunks of a step never overlap.
CREATE TABLE log_chunks (
    step_id      BIGINT NOT NULL,
    first_number BIGINT NOT NULL,
    last_number  BIGINT NOT NULL,
    streams      TEXT NOT NULL,
    elapsed_ms   TEXT NOT NULL,
    text_ends    TEXT NOT NULL,
    texts        TEXT NOT NULL,
    PRIMARY KEY (step_id, last_number)
);

-- Each stored line becomes a one-line chunk.
INSERT INTO log_chunks (step_id, first_number, last_number, streams, elapsed_ms, text_ends, texts)
SELECT step_id, number, number,
       CASE stream WHEN 'stderr' THEN 'e' WHEN 'system' THEN 's' ELSE 'o' END,
       CAST(elapsed_ms AS TEXT), CAST(length(CAST(text AS BLOB)) AS TEXT), text
FROM log_lines;

DROP TABLE log_lines;
