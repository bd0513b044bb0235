-- A log batch in one round trip: append_logs calls this function for a batch whose numbers
-- are distinct, cut into chunks by the client. It stores the chunks and adds their lines
-- and bytes to the step's usage only when nothing special happens: the step exists, is
-- not truncated, stays within the cap with the whole batch, and no stored chunk overlaps
-- the batch's numbers. Otherwise it changes nothing and says why, and the client takes
-- the exact path (one transaction reading usage and overlapping ranges first).
--
-- Each statement of a PL/pgSQL function takes its own snapshot under READ COMMITTED, so
-- the overlap check runs after the step's row lock is granted and sees the chunks of
-- every append that held that lock before: two overlapping retries of one batch never
-- both insert. The commit of the calling statement does not wait for the WAL flush, as
-- for every log write (see "Logs and the cap" in crates/gantry-store/README.md):
-- set_config(..., true) lasts until the end of the caller's transaction, which is where
-- synchronous_commit is read.
CREATE FUNCTION gantry_append_log_chunks(
    p_step_id BIGINT,
    p_lines BIGINT,
    p_bytes BIGINT,
    p_max_lines BIGINT,
    p_max_bytes BIGINT,
    p_low BIGINT,
    p_high BIGINT,
    p_first_numbers BIGINT[],
    p_last_numbers BIGINT[],
    p_streams TEXT[],
    p_elapsed_ms TEXT[],
    p_text_ends TEXT[],
    p_texts TEXT[]
) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    used_lines BIGINT;
    used_bytes BIGINT;
    truncated BOOLEAN;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT log_lines, log_bytes, log_truncated INTO used_lines, used_bytes, truncated
        FROM steps WHERE id = p_step_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'no step';
    END IF;
    IF truncated OR used_lines + p_lines > p_max_lines OR used_bytes + p_bytes > p_max_bytes THEN
        RETURN 'cap';
    END IF;
    IF EXISTS (SELECT 1 FROM log_chunks WHERE step_id = p_step_id
               AND last_number >= p_low AND first_number <= p_high) THEN
        RETURN 'overlap';
    END IF;
    INSERT INTO log_chunks (step_id, first_number, last_number, streams, elapsed_ms, text_ends, texts)
        SELECT p_step_id, c.* FROM unnest(p_first_numbers, p_last_numbers, p_streams,
                                          p_elapsed_ms, p_text_ends, p_texts) AS c;
    UPDATE steps SET log_lines = used_lines + p_lines, log_bytes = used_bytes + p_bytes
        WHERE id = p_step_id;
    RETURN 'stored';
END
$$;
