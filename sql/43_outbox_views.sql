-- Operator views over the outbox.

CREATE OR REPLACE VIEW picloud.delivery_queue AS
SELECT d.app_id, d.status, count(*) AS depth,
       min(d.created_at) AS oldest_created_at,
       now() - min(d.created_at) AS oldest_age,
       min(d.run_at) FILTER (WHERE d.status IN ('pending', 'running')) AS next_run_at
  FROM picloud.deliveries d
 GROUP BY d.app_id, d.status;
COMMENT ON VIEW picloud.delivery_queue IS
    'Queue depth and age of the oldest delivery by app and status (pending, running, done, dead).';

CREATE OR REPLACE VIEW picloud.dead_letter_summary AS
SELECT dl.app_id, dl.source, count(*) AS total,
       count(*) FILTER (WHERE dl.retried_at IS NULL) AS not_retried,
       min(dl.created_at) AS oldest_at, max(dl.created_at) AS newest_at
  FROM picloud.dead_letters dl
 GROUP BY dl.app_id, dl.source;
COMMENT ON VIEW picloud.dead_letter_summary IS
    'Dead letters by app and source: how many, how many not retried yet, oldest and newest.';

CREATE OR REPLACE FUNCTION picloud.list_deliveries(
    app_id uuid, status text, source text, page_size integer)
RETURNS SETOF picloud.deliveries
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF list_deliveries.status IS NOT NULL
       AND NOT list_deliveries.status = ANY (picloud.delivery_statuses()) THEN
        RAISE EXCEPTION 'unknown delivery status %; one of %',
            quote_literal(left(list_deliveries.status, 64)),
            array_to_string(picloud.delivery_statuses(), ', ')
            USING ERRCODE = '22023';
    END IF;
    PERFORM picloud.check_dead_letter_filter(list_deliveries.source, NULL, NULL);
    RETURN QUERY
    SELECT d.* FROM picloud.deliveries d
     WHERE d.app_id = list_deliveries.app_id
       AND (list_deliveries.status IS NULL OR d.status = list_deliveries.status)
       AND (list_deliveries.source IS NULL OR d.source = list_deliveries.source)
     ORDER BY d.id DESC
     LIMIT list_deliveries.page_size;
END
$$;
COMMENT ON FUNCTION picloud.list_deliveries(uuid, text, text, integer) IS
    'An app''s deliveries, newest first, optionally in one status and of one source (22023 for an unknown status or source).';

CREATE OR REPLACE FUNCTION picloud.delivery_attempts_of(app_id uuid, delivery_id bigint)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'attempt', a.attempt, 'worker', a.worker, 'started_at', a.started_at,
               'finished_at', a.finished_at, 'outcome', a.outcome, 'error', a.error)
               ORDER BY a.attempt), '[]'::jsonb)
      FROM picloud.delivery_attempts a
     WHERE a.app_id = delivery_attempts_of.app_id AND a.delivery_id = delivery_attempts_of.delivery_id
$$;
COMMENT ON FUNCTION picloud.delivery_attempts_of(uuid, bigint) IS
    'The runs of one delivery as a JSON list, first first: attempt, worker, started_at, finished_at, outcome, error.';
