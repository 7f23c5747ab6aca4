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
