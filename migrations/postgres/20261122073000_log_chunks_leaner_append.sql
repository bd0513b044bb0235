-- Two costs per log batch that grew with the number of lines or were paid twice:
--
-- The per-line columns (streams, elapsed_ms, text_ends) of a batch of short lines take a
-- few KiB, which pushed the row past the TOAST threshold, so pglz compressed them on every
-- insert (a tenth of the server's time with 100-byte lines). Like texts they are now kept
-- uncompressed, moved out of line when the row is too large.
ALTER TABLE log_chunks
    ALTER COLUMN streams SET STORAGE EXTERNAL,
    ALTER COLUMN elapsed_ms SET STORAGE EXTERNAL,
    ALTER COLUMN text_ends SET STORAGE EXTERNAL;

-- gantry_append_log_chunks locked the step's row (SELECT ... FOR UPDATE, a row lock written
-- to the heap and the WAL) and then updated it. The update now takes the lock and checks
-- the cap in one statement: under READ COMMITTED an UPDATE that waited for the row checks
-- its condition against the row's newest version. The overlap check that follows is a
-- statement of its own, so it sees the chunks of every append that held the lock before,
-- as before; when it finds one (a retry) the usage is put back and nothing is stored. The
-- answers and what the client does with them are unchanged.
CREATE OR REPLACE FUNCTION gantry_append_log_chunks(
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
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE steps SET log_lines = log_lines + p_lines, log_bytes = log_bytes + p_bytes
        WHERE id = p_step_id AND NOT log_truncated
          AND log_lines + p_lines <= p_max_lines AND log_bytes + p_bytes <= p_max_bytes;
    IF NOT FOUND THEN
        PERFORM 1 FROM steps WHERE id = p_step_id;
        IF NOT FOUND THEN
            RETURN 'no step';
        END IF;
        RETURN 'cap';
    END IF;
    IF EXISTS (SELECT 1 FROM log_chunks WHERE step_id = p_step_id
               AND last_number >= p_low AND first_number <= p_high) THEN
        UPDATE steps SET log_lines = log_lines - p_lines, log_bytes = log_bytes - p_bytes
            WHERE id = p_step_id;
        RETURN 'overlap';
    END IF;
    INSERT INTO log_chunks (step_id, first_number, last_number, streams, elapsed_ms, text_ends, texts)
        SELECT p_step_id, c.* FROM unnest(p_first_numbers, p_last_numbers, p_streams,
                                          p_elapsed_ms, p_text_ends, p_texts) AS c;
    RETURN 'stored';
END
$$;
