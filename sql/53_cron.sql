-- Cron jobs: the ticker (picloud.cron) claims due rows with FOR UPDATE SKIP LOCKED,
-- computes the next time in Python (croniter) and calls picloud.cron_fire in the same
-- transaction, so each due time fires once however many nodes tick.

CREATE OR REPLACE FUNCTION picloud.cron_fire(app_id uuid, name text, due_at timestamptz,
                                  next_run_at timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_job picloud.cron_jobs;
BEGIN
    UPDATE picloud.cron_jobs j
       SET next_run_at = cron_fire.next_run_at, last_run_at = now(), last_error = NULL
     WHERE j.app_id = cron_fire.app_id AND j.name = cron_fire.name AND j.enabled
       AND j.next_run_at = cron_fire.due_at
    RETURNING * INTO v_job;
    IF NOT FOUND THEN
        RETURN NULL;  -- fired already (or disabled, or rescheduled) since it was read
    END IF;
    RETURN picloud.enqueue_event(
        v_job.app_id, 'cron', v_job.name,
        jsonb_build_object(
            'type', 'fire', 'job', v_job.name, 'expression', v_job.expression,
            'timezone', v_job.timezone, 'scheduled_at', cron_fire.due_at,
            'fired_at', now(), 'payload', v_job.payload));
END
$$;
COMMENT ON FUNCTION picloud.cron_fire(uuid, text, timestamptz, timestamptz) IS
    'Fire one due time of a cron job: move next_run_at from due_at to next_run_at and enqueue a cron fire event (subject = job name). Returns the deliveries enqueued, or NULL when that due time was already fired.';

CREATE OR REPLACE FUNCTION picloud.cron_schedule(app_id uuid, name text,
                                                  next_run_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF cron_schedule.next_run_at IS NULL THEN
        RAISE EXCEPTION 'next_run_at must be given' USING ERRCODE = '22023';
    END IF;
    UPDATE picloud.cron_jobs j SET next_run_at = cron_schedule.next_run_at
     WHERE j.app_id = cron_schedule.app_id AND j.name = cron_schedule.name
       AND j.next_run_at IS NULL;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION picloud.cron_schedule(uuid, text, timestamptz) IS
    'The ticker gives a cron job without a due time (inserted from psql, or changed without one) its next time, without firing it: true when it did, false when the job has a due time already or is gone. 22023 when next_run_at is NULL.';

CREATE OR REPLACE FUNCTION picloud.cron_disable(app_id uuid, name text, error text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF coalesce(cron_disable.error, '') = '' THEN
        RAISE EXCEPTION 'a disabled cron job says why: error must be given'
            USING ERRCODE = '22023';
    END IF;
    UPDATE picloud.cron_jobs j SET enabled = false, last_error = cron_disable.error
     WHERE j.app_id = cron_disable.app_id AND j.name = cron_disable.name;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION picloud.cron_disable(uuid, text, text) IS
    'The ticker disables a cron job whose expression or time zone it cannot use, saying why in last_error: true when it did, false when the job is gone. 22023 when error is NULL or empty.';

CREATE OR REPLACE FUNCTION picloud.check_cron_payload(payload jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF check_cron_payload.payload IS NOT NULL
       AND jsonb_typeof(check_cron_payload.payload) <> 'object' THEN
        RAISE EXCEPTION '''payload'' must be a JSON object, not %',
            jsonb_typeof(check_cron_payload.payload) USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_cron_payload(jsonb) IS
    '22023 unless a cron job''s payload is a JSON object (NULL: none given).';

-- Expressions and time zones are parsed, and due times computed, by picloud.cron.expressions
-- (croniter), the one place that knows the grammar: the HTTP layer and the ticker both
-- call it. next_run_at NULL leaves the first due time to the ticker (cron_schedule).
CREATE OR REPLACE FUNCTION picloud.create_cron_job(
    app_id uuid, name text, expression text, timezone text DEFAULT NULL,
    payload jsonb DEFAULT NULL, enabled boolean DEFAULT NULL, next_run_at timestamptz DEFAULT NULL)
RETURNS SETOF picloud.cron_jobs
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM picloud.check_cron_payload(create_cron_job.payload);
    -- One INSERT (sql/15_row_defaults.sql): what is not given takes the columns' defaults
    -- (timezone UTC, payload {}, enabled).
    RETURN QUERY EXECUTE format(
        'INSERT INTO picloud.cron_jobs AS j (app_id, name, expression, next_run_at, timezone,'
        ' payload, enabled) VALUES ($1, $2, $3, $4, %s, %s, %s) RETURNING j.*',
        picloud.value_or_default(create_cron_job.timezone, 5),
        picloud.value_or_default(create_cron_job.payload, 6),
        picloud.value_or_default(create_cron_job.enabled, 7))
    USING create_cron_job.app_id, create_cron_job.name, create_cron_job.expression,
          create_cron_job.next_run_at, create_cron_job.timezone, create_cron_job.payload,
          create_cron_job.enabled;
END
$$;
COMMENT ON FUNCTION picloud.create_cron_job(uuid, text, text, text, jsonb, boolean, timestamptz) IS
    'Create a cron job (what is not given takes the columns'' defaults; 23505 when the name is taken, 23514 for a bad name, 22023 for a payload that is not an object). The caller has parsed expression and timezone and computed next_run_at (NULL: the ticker schedules it).';

CREATE OR REPLACE FUNCTION picloud.update_cron_job(
    app_id uuid, name text, expression text DEFAULT NULL, timezone text DEFAULT NULL,
    payload jsonb DEFAULT NULL, enabled boolean DEFAULT NULL, next_run_at timestamptz DEFAULT NULL)
RETURNS SETOF picloud.cron_jobs
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_job picloud.cron_jobs;
BEGIN
    PERFORM picloud.check_cron_payload(update_cron_job.payload);
    -- Every change starts the schedule afresh from now (no catch-up firing): next_run_at
    -- when the caller computed it, else NULL for the ticker to schedule without firing.
    UPDATE picloud.cron_jobs j
       SET expression = coalesce(update_cron_job.expression, j.expression),
           timezone = coalesce(update_cron_job.timezone, j.timezone),
           payload = coalesce(update_cron_job.payload, j.payload),
           enabled = coalesce(update_cron_job.enabled, j.enabled),
           next_run_at = update_cron_job.next_run_at, last_error = NULL, updated_at = now()
     WHERE j.app_id = update_cron_job.app_id AND j.name = update_cron_job.name
    RETURNING * INTO v_job;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such cron job' USING ERRCODE = 'P0002';
    END IF;
    RETURN NEXT v_job;
END
$$;
COMMENT ON FUNCTION picloud.update_cron_job(uuid, text, text, text, jsonb, boolean, timestamptz) IS
    'Change a cron job (NULL leaves a field as it is) and set its next due time (NULL: the ticker schedules it, without firing); P0002 when there is none.';

CREATE OR REPLACE FUNCTION picloud.delete_cron_job(app_id uuid, name text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_name text;
BEGIN
    DELETE FROM picloud.cron_jobs j
     WHERE j.app_id = delete_cron_job.app_id AND j.name = delete_cron_job.name
    RETURNING j.name INTO v_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such cron job' USING ERRCODE = 'P0002';
    END IF;
    RETURN v_name;
END
$$;
COMMENT ON FUNCTION picloud.delete_cron_job(uuid, text) IS
    'Delete a cron job (P0002 when there is none); returns its name.';
