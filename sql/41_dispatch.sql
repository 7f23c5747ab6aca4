-- The dispatcher's SQL API: claim (leasing, or running SQL handlers on the spot), run SQL
-- handlers, finish (done, or failed with backoff), release.

CREATE OR REPLACE FUNCTION picloud.backoff_delay(attempt integer, jitter double precision DEFAULT random())
RETURNS interval
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    -- Exponential from the base, capped, with "equal jitter": a uniform pick in [d/2, d].
    SELECT make_interval(secs => v.d * (0.5 + 0.5 * greatest(0.0, least(1.0, backoff_delay.jitter)))
                                 / 1000.0)
      FROM (SELECT least(
                coalesce(nullif(current_setting('picloud.dispatch_backoff_cap_ms', true), '')::float8,
                         3600000.0),
                coalesce(nullif(current_setting('picloud.dispatch_backoff_base_ms', true), '')::float8,
                         1000.0)
                * power(2.0, least(greatest(backoff_delay.attempt, 1) - 1, 60))) AS d) v
$$;
COMMENT ON FUNCTION picloud.backoff_delay(integer, double precision) IS
    'Delay before the next try after failed attempt n: min(cap, base * 2^(n-1)) scaled into [1/2, 1] by jitter (random by default). base/cap: session settings picloud.dispatch_backoff_base_ms [1000] and picloud.dispatch_backoff_cap_ms [3600000].';

CREATE OR REPLACE FUNCTION picloud.dead_letter_delivery(app_id uuid, id bigint, error text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_dead bigint;
BEGIN
    WITH d AS (
        UPDATE picloud.deliveries d
           SET status = 'dead', lease_owner = NULL, lease_expires_at = NULL,
               last_error = dead_letter_delivery.error, finished_at = now(), updated_at = now()
         WHERE d.app_id = dead_letter_delivery.app_id AND d.id = dead_letter_delivery.id
        RETURNING d.*)
    INSERT INTO picloud.dead_letters
        (app_id, delivery_id, trigger_id, handler_id, source, subject, event, attempts, last_error)
    SELECT d.app_id, d.id, d.trigger_id, d.handler_id, d.source, d.subject, d.event, d.attempts,
           d.last_error
      FROM d
    RETURNING dead_letters.id INTO v_dead;
    RETURN v_dead;
END
$$;
COMMENT ON FUNCTION picloud.dead_letter_delivery(uuid, bigint, text) IS
    'Mark a delivery dead and write its dead_letters row (which fans out to dead_letter triggers). Returns the dead letter id. Internal: fail_delivery and claim_deliveries call it.';

CREATE OR REPLACE FUNCTION picloud.reclaim_expired_leases(max integer) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_expired record;
    v_count   integer := 0;
BEGIN
    -- The attempt is recorded as lost, and the delivery is due again (or dead, when that
    -- was its last attempt).
    FOR v_expired IN
        SELECT d.app_id, d.id, d.attempts, d.max_attempts, d.lease_owner
          FROM picloud.deliveries d
         WHERE d.status = 'running' AND d.run_at <= now()
         ORDER BY d.run_at
         LIMIT reclaim_expired_leases.max
           FOR UPDATE SKIP LOCKED
    LOOP
        v_count := v_count + 1;
        UPDATE picloud.delivery_attempts a
           SET finished_at = now(), outcome = 'lease_expired',
               error = 'lease of ' || v_expired.lease_owner || ' expired'
         WHERE a.app_id = v_expired.app_id AND a.delivery_id = v_expired.id
           AND a.attempt = v_expired.attempts AND a.outcome IS NULL;
        IF v_expired.attempts >= v_expired.max_attempts THEN
            PERFORM picloud.dead_letter_delivery(
                v_expired.app_id, v_expired.id,
                'lease of ' || v_expired.lease_owner || ' expired on the last attempt');
        ELSE
            UPDATE picloud.deliveries d
               SET status = 'pending', run_at = now(), lease_owner = NULL,
                   lease_expires_at = NULL, updated_at = now(),
                   last_error = 'lease of ' || v_expired.lease_owner || ' expired'
             WHERE d.app_id = v_expired.app_id AND d.id = v_expired.id;
        END IF;
    END LOOP;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION picloud.reclaim_expired_leases(integer) IS
    'Up to max running deliveries whose lease ran out (SKIP LOCKED): the attempt is recorded as lease_expired and the delivery is due again, or dead if that was its last attempt. Returns how many. Claimers call it first.';

CREATE OR REPLACE FUNCTION picloud.lease_deliveries(
    app_ids uuid[], ids bigint[], worker text, lease interval)
RETURNS TABLE (
    id bigint, app_id uuid, trigger_id uuid, handler_id uuid, source text, subject text,
    event jsonb, attempt integer, max_attempts integer, lease_expires_at timestamptz,
    handler_kind text, url text, secret text, function text, timeout_ms integer)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    WITH u AS (
        UPDATE picloud.deliveries d
           SET status = 'running', attempts = d.attempts + 1,
               lease_owner = lease_deliveries.worker,
               lease_expires_at = now() + lease_deliveries.lease,
               run_at = now() + lease_deliveries.lease, updated_at = now()
          FROM unnest(lease_deliveries.app_ids, lease_deliveries.ids) AS c (app_id, id)
         WHERE d.app_id = c.app_id AND d.id = c.id AND d.status = 'pending'
        RETURNING d.id, d.app_id, d.trigger_id, d.handler_id, d.source, d.subject, d.event,
                  d.attempts, d.max_attempts, d.lease_expires_at
    ), a AS (
        INSERT INTO picloud.delivery_attempts (app_id, delivery_id, attempt, worker)
        SELECT u.app_id, u.id, u.attempts, lease_deliveries.worker FROM u
    )
    SELECT u.id, u.app_id, u.trigger_id, u.handler_id, u.source, u.subject, u.event,
           u.attempts, u.max_attempts, u.lease_expires_at,
           h.kind, h.url, h.secret, h.function, h.timeout_ms
      FROM u
      LEFT JOIN picloud.handlers h ON h.app_id = u.app_id AND h.id = u.handler_id
     ORDER BY u.id;
END
$$;
COMMENT ON FUNCTION picloud.lease_deliveries(uuid[], bigint[], text, interval) IS
    'Lease the pending deliveries (app_ids[i], ids[i]), which the caller has locked, to worker for lease: running, attempts + 1, an open attempt record; returns them with their handler. Internal to claim_deliveries.';

CREATE OR REPLACE FUNCTION picloud.call_sql_handlers(
    app_ids uuid[], ids bigint[], min_timeout_ms integer,
    OUT ok_app_ids uuid[], OUT ok_ids bigint[],
    OUT failed_app_ids uuid[], OUT failed_ids bigint[], OUT errors text[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_group   record;
    v_call    text;
    v_state   text;
    v_message text;
BEGIN
    ok_app_ids := '{}'; ok_ids := '{}'; failed_app_ids := '{}'; failed_ids := '{}'; errors := '{}';
    -- One group per function: its calls in one statement and one subtransaction. When that
    -- fails, the group rolled back and each call runs again alone, in a subtransaction of
    -- its own, to find the failing ones. (query_canceled, the statement timeout, is not
    -- caught by OTHERS: it aborts the caller's whole statement.)
    FOR v_group IN
        SELECT h.function AS fn, array_agg(d.app_id ORDER BY u.n) AS app_ids,
               array_agg(d.id ORDER BY u.n) AS ids, array_agg(d.event ORDER BY u.n) AS events
          FROM unnest(call_sql_handlers.app_ids, call_sql_handlers.ids)
               WITH ORDINALITY AS u (app_id, id, n)
          JOIN picloud.deliveries d ON d.app_id = u.app_id AND d.id = u.id
          JOIN picloud.handlers h ON h.app_id = d.app_id AND h.id = d.handler_id
         WHERE h.kind = 'sql' AND h.timeout_ms >= call_sql_handlers.min_timeout_ms
         GROUP BY h.function
    LOOP
        BEGIN
            -- (Checked once per function: the regular expression is not cheap next to a
            -- handler call.)
            v_call := picloud.checked_sql_handler(v_group.fn);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            failed_app_ids := failed_app_ids || v_group.app_ids;
            failed_ids := failed_ids || v_group.ids;
            errors := errors || array_fill(v_state || ': ' || v_message,
                                           ARRAY[cardinality(v_group.ids)]);
            CONTINUE;
        END;
        BEGIN
            EXECUTE format('SELECT %s(e) FROM unnest($1) AS e', v_call) USING v_group.events;
            ok_app_ids := ok_app_ids || v_group.app_ids;
            ok_ids := ok_ids || v_group.ids;
        EXCEPTION WHEN OTHERS THEN
            FOR i IN 1 .. cardinality(v_group.ids) LOOP
                BEGIN
                    EXECUTE format('SELECT %s($1)', v_call) USING v_group.events[i];
                    ok_app_ids := ok_app_ids || v_group.app_ids[i];
                    ok_ids := ok_ids || v_group.ids[i];
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
                    failed_app_ids := failed_app_ids || v_group.app_ids[i];
                    failed_ids := failed_ids || v_group.ids[i];
                    errors := errors || (v_state || ': ' || v_message);
                END;
            END LOOP;
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION picloud.call_sql_handlers(uuid[], bigint[], integer) IS
    'Run the SQL handlers of deliveries (app_ids[i], ids[i]), grouped by function (a group in one statement; one by one in subtransactions when it fails, so a failing handler''s writes roll back alone): the keys of those that ran (ok_*) and of those that failed (failed_*, with errors[i] = ''<SQLSTATE>: <message>''). Only deliveries whose handler is an SQL one with a timeout of at least min_timeout_ms run; the others are in neither list. Records nothing: internal to claim_deliveries and run_sql_deliveries.';

CREATE OR REPLACE FUNCTION picloud.claim_deliveries(
    worker text, max integer, lease interval,
    run_within_ms integer DEFAULT NULL, max_leased integer DEFAULT NULL)
RETURNS TABLE (
    id bigint, app_id uuid, trigger_id uuid, handler_id uuid, source text, subject text,
    event jsonb, attempt integer, max_attempts integer, lease_expires_at timestamptz,
    handler_kind text, url text, secret text, function text, timeout_ms integer,
    outcome text, error text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_max_leased integer := coalesce(claim_deliveries.max_leased, claim_deliveries.max);
    v_limit      double precision;
    v_due        record;
    v_ok_apps    uuid[] := '{}'::uuid[];
    v_ok_ids     bigint[] := '{}'::bigint[];
    v_bad_apps   uuid[] := '{}'::uuid[];
    v_bad_ids    bigint[] := '{}'::bigint[];
    v_errors     text[] := '{}'::text[];
BEGIN
    IF claim_deliveries.worker IS NULL OR claim_deliveries.worker = '' THEN
        RAISE EXCEPTION 'worker is required' USING ERRCODE = '22023';
    END IF;
    IF claim_deliveries.max IS NULL OR claim_deliveries.max NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'max must be between 1 and 10000' USING ERRCODE = '22023';
    END IF;
    IF claim_deliveries.lease IS NULL OR claim_deliveries.lease <= interval '0' THEN
        RAISE EXCEPTION 'lease must be positive' USING ERRCODE = '22023';
    END IF;
    IF v_max_leased NOT BETWEEN 0 AND claim_deliveries.max THEN
        RAISE EXCEPTION 'max_leased must be between 0 and max' USING ERRCODE = '22023';
    END IF;
    IF claim_deliveries.run_within_ms IS NOT NULL THEN
        -- Handlers run here only when the statement timeout in force ends this call before
        -- any of their own timeouts could run out.
        v_limit := extract(epoch FROM current_setting('statement_timeout')::interval) * 1000;
        IF claim_deliveries.run_within_ms <= 0 OR v_limit <= 0
           OR v_limit > claim_deliveries.run_within_ms THEN
            RAISE EXCEPTION 'run_within_ms (%) must be positive and at least the statement_timeout in force (%)',
                claim_deliveries.run_within_ms, current_setting('statement_timeout')
                USING ERRCODE = '22023',
                      HINT = 'SET LOCAL statement_timeout in the calling transaction.';
        END IF;
    END IF;
    PERFORM picloud.reclaim_expired_leases(claim_deliveries.max);
    -- (plpgsql: the plans of this function's statements are cached across calls.)
    SELECT coalesce(array_agg(c.app_id), '{}') AS app_ids, coalesce(array_agg(c.id), '{}') AS ids
      INTO v_due
      FROM (SELECT d.app_id, d.id
              FROM picloud.deliveries d
             WHERE d.status = 'pending' AND d.run_at <= now()
             ORDER BY d.run_at
             LIMIT claim_deliveries.max
               FOR UPDATE SKIP LOCKED) c;

    -- SQL handlers whose timeout is at least run_within_ms run here, before anything is
    -- leased: the succeeded ones are done in this transaction, with their writes and one
    -- row version each (never leased); the failed ones are leased, then failed as
    -- fail_delivery does (retry | dead).
    IF claim_deliveries.run_within_ms IS NOT NULL THEN
        SELECT r.ok_app_ids, r.ok_ids, r.failed_app_ids, r.failed_ids, r.errors
          INTO v_ok_apps, v_ok_ids, v_bad_apps, v_bad_ids, v_errors
          FROM picloud.call_sql_handlers(v_due.app_ids, v_due.ids,
                                         claim_deliveries.run_within_ms) r;
    END IF;
    IF cardinality(v_ok_ids) > 0 THEN
        RETURN QUERY
        WITH done AS (
            -- (now() is when the claim started, clock_timestamp() when its handlers ended.)
            UPDATE picloud.deliveries d
               SET status = 'done', attempts = d.attempts + 1, lease_owner = NULL,
                   lease_expires_at = NULL, last_error = NULL, finished_at = clock_timestamp(),
                   updated_at = clock_timestamp()
              FROM unnest(v_ok_apps, v_ok_ids) AS c (app_id, id)
             WHERE d.app_id = c.app_id AND d.id = c.id
            RETURNING d.app_id, d.id, d.attempts, d.finished_at
        ), a AS (
            INSERT INTO picloud.delivery_attempts
                (app_id, delivery_id, attempt, worker, started_at, finished_at, outcome)
            SELECT done.app_id, done.id, done.attempts, claim_deliveries.worker, now(),
                   done.finished_at, 'ok'
              FROM done
        )
        SELECT done.id, done.app_id, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::jsonb,
               done.attempts, NULL::integer, NULL::timestamptz, 'sql'::text, NULL::text,
               NULL::text, NULL::text, NULL::integer, 'ok'::text, NULL::text
          FROM done;
    END IF;
    IF cardinality(v_bad_ids) > 0 THEN
        PERFORM 1 FROM picloud.lease_deliveries(v_bad_apps, v_bad_ids,
                                                claim_deliveries.worker, claim_deliveries.lease);
        -- (attempt: the number the lease gave this run, for the dispatcher's log.)
        RETURN QUERY
        SELECT b.id, b.app_id, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::jsonb,
               d.attempts, NULL::integer, NULL::timestamptz, 'sql'::text, NULL::text,
               NULL::text, NULL::text, NULL::integer,
               picloud.fail_delivery(b.id, claim_deliveries.worker, b.error), b.error
          FROM unnest(v_bad_apps, v_bad_ids, v_errors)
               WITH ORDINALITY AS b (app_id, id, error, n)
          JOIN picloud.deliveries d ON d.app_id = b.app_id AND d.id = b.id
         ORDER BY b.n;
    END IF;

    -- The rest (webhooks, SQL handlers not run here): the first max_leased leased, for the
    -- caller to run; any others stay pending when this transaction ends.
    RETURN QUERY
    SELECT l.*, NULL::text, NULL::text
      FROM picloud.lease_deliveries(
               ARRAY(SELECT u.app_id FROM unnest(v_due.app_ids, v_due.ids) AS u (app_id, id)
                      WHERE NOT (u.id = ANY (v_ok_ids) OR u.id = ANY (v_bad_ids))
                      LIMIT v_max_leased),
               ARRAY(SELECT u.id FROM unnest(v_due.ids) AS u (id)
                      WHERE NOT (u.id = ANY (v_ok_ids) OR u.id = ANY (v_bad_ids))
                      LIMIT v_max_leased),
               claim_deliveries.worker, claim_deliveries.lease) l;
END
$$;
COMMENT ON FUNCTION picloud.claim_deliveries(text, integer, interval, integer, integer) IS
    'Claim up to max due deliveries for worker (FOR UPDATE SKIP LOCKED, so concurrent claimers never share one), after reclaiming expired leases (their attempt recorded as lease_expired; due again, or dead on the last attempt). With run_within_ms, those whose SQL handler''s timeout is at least run_within_ms run here (picloud.call_sql_handlers) and are completed in this transaction with their writes (outcome ok) or failed as fail_delivery does (retry | dead, with error); the caller must SET LOCAL statement_timeout to at most run_within_ms (22023 otherwise), and a timeout aborts the call and claims nothing. Of the rest, the first max_leased (default: max) are leased to worker for lease and returned with their handler and outcome NULL; the others stay due.';

CREATE OR REPLACE FUNCTION picloud.run_sql_deliveries(app_ids uuid[], ids bigint[], worker text)
RETURNS TABLE (id bigint, outcome text, error text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_held   record;
    v_ran    record;
    v_apps   uuid[];
    v_ids    bigint[];
    v_errors text[];
BEGIN
    IF cardinality(run_sql_deliveries.app_ids) IS DISTINCT FROM cardinality(run_sql_deliveries.ids) THEN
        RAISE EXCEPTION 'app_ids and ids must have the same length' USING ERRCODE = '22023';
    END IF;
    -- Lock the deliveries this worker still holds before the first handler runs. The row
    -- locks last to the end of the transaction: no claimer (SKIP LOCKED) can reclaim one
    -- while the batch runs, so the completion below cannot be refused.
    SELECT coalesce(array_agg(h.app_id ORDER BY h.n), '{}') AS app_ids,
           coalesce(array_agg(h.id ORDER BY h.n), '{}') AS ids
      INTO v_held
      FROM (SELECT d.app_id, d.id, u.n
              FROM unnest(run_sql_deliveries.app_ids, run_sql_deliveries.ids)
                   WITH ORDINALITY AS u (app_id, id, n)
              JOIN picloud.deliveries d ON d.app_id = u.app_id AND d.id = u.id
             WHERE d.status = 'running' AND d.lease_owner = run_sql_deliveries.worker
               FOR UPDATE OF d) h;
    v_ran := picloud.call_sql_handlers(v_held.app_ids, v_held.ids, 0);
    -- What ran, what failed, and (failed too) a held delivery that did not run: its
    -- handler is no longer an SQL one.
    SELECT v_ran.ok_app_ids || v_ran.failed_app_ids || coalesce(array_agg(u.app_id), '{}'),
           v_ran.ok_ids || v_ran.failed_ids || coalesce(array_agg(u.id), '{}'),
           array_fill(NULL::text, ARRAY[cardinality(v_ran.ok_ids)]) || v_ran.errors
               || coalesce(array_agg('22023: the handler is no longer an SQL handler'::text), '{}')
      INTO v_apps, v_ids, v_errors
      FROM unnest(v_held.app_ids, v_held.ids) AS u (app_id, id)
     WHERE NOT (u.id = ANY (v_ran.ok_ids) OR u.id = ANY (v_ran.failed_ids));
    -- Recorded in the transaction that holds the handlers' writes: both commit together.
    RETURN QUERY
    SELECT f.id, f.outcome, r.error
      FROM picloud.finish_deliveries(
               v_apps, v_ids, array_fill(run_sql_deliveries.worker, ARRAY[cardinality(v_ids)]),
               v_errors) f
      JOIN unnest(v_ids, v_errors) AS r (id, error) ON r.id = f.id;
    -- Leases already lost when the batch started: refused, their handlers not run.
    RETURN QUERY
    SELECT u.id, 'stale'::text, NULL::text
      FROM unnest(run_sql_deliveries.ids) AS u (id)
     WHERE NOT u.id = ANY (v_held.ids);
END
$$;
COMMENT ON FUNCTION picloud.run_sql_deliveries(uuid[], bigint[], text) IS
    'Run the SQL handlers of deliveries (app_ids[i], ids[i]) leased to worker (picloud.call_sql_handlers) and record each outcome (finish_deliveries) in the same transaction as the handlers'' writes; the deliveries are locked first, so no claimer can reclaim them meanwhile. Outcome per id: ok | retry | dead | stale (lease already lost: not run). The caller''s statement_timeout bounds the whole batch; a timeout aborts all of it (nothing recorded).';

CREATE OR REPLACE FUNCTION picloud.finish_deliveries(
    app_ids uuid[], ids bigint[], workers text[], errors text[])
RETURNS TABLE (id bigint, outcome text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF cardinality(finish_deliveries.app_ids) IS DISTINCT FROM cardinality(finish_deliveries.ids)
       OR cardinality(finish_deliveries.ids) IS DISTINCT FROM cardinality(finish_deliveries.workers)
       OR cardinality(finish_deliveries.ids) IS DISTINCT FROM cardinality(finish_deliveries.errors)
    THEN
        RAISE EXCEPTION 'app_ids, ids, workers and errors must have the same length'
            USING ERRCODE = '22023';
    END IF;
    -- Succeeded: done, in one statement. Joined on the primary key: on id and status alone
    -- the planner picks the partial index of running deliveries, whose dead entries pile up
    -- while a backlog drains.
    RETURN QUERY
    WITH c AS (
        SELECT c.app_id, c.id, c.worker
          FROM unnest(finish_deliveries.app_ids, finish_deliveries.ids, finish_deliveries.workers,
                      finish_deliveries.errors) AS c (app_id, id, worker, error)
         WHERE c.error IS NULL
    ), done AS (
        UPDATE picloud.deliveries d
           SET status = 'done', lease_owner = NULL, lease_expires_at = NULL, last_error = NULL,
               finished_at = now(), updated_at = now()
          FROM c
         WHERE d.app_id = c.app_id AND d.id = c.id AND d.status = 'running'
           AND d.lease_owner = c.worker
        RETURNING d.app_id, d.id, d.attempts
    ), recorded AS (
        UPDATE picloud.delivery_attempts a SET finished_at = now(), outcome = 'ok'
          FROM done
         WHERE a.app_id = done.app_id AND a.delivery_id = done.id AND a.attempt = done.attempts
    )
    SELECT c.id, CASE WHEN EXISTS (SELECT 1 FROM done WHERE done.id = c.id) THEN 'ok'
                      ELSE 'stale' END
      FROM c;
    -- Failed: retry or dead, as fail_delivery decides.
    RETURN QUERY
    SELECT f.id, picloud.fail_delivery(f.id, f.worker, f.error)
      FROM unnest(finish_deliveries.ids, finish_deliveries.workers, finish_deliveries.errors)
           WITH ORDINALITY AS f (id, worker, error, n)
     WHERE f.error IS NOT NULL
     ORDER BY f.n;
END
$$;
COMMENT ON FUNCTION picloud.finish_deliveries(uuid[], bigint[], text[], text[]) IS
    'Record how handler runs ended, many in one call: (app_ids[i], ids[i]) leased to workers[i] succeeded when errors[i] is NULL (done) and failed with errors[i] otherwise (fail_delivery). Outcome per id: ok | retry | dead | stale (refused: workers[i] no longer holds the lease). The one way deliveries are completed.';

CREATE OR REPLACE FUNCTION picloud.complete_delivery(id bigint, worker text) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(bool_and(f.outcome = 'ok'), false)
      FROM picloud.deliveries d,
           LATERAL picloud.finish_deliveries(ARRAY[d.app_id], ARRAY[d.id],
                                             ARRAY[complete_delivery.worker], ARRAY[NULL::text]) f
     WHERE d.id = complete_delivery.id
$$;
COMMENT ON FUNCTION picloud.complete_delivery(bigint, text) IS
    'finish_deliveries for one delivery that succeeded: true when done, false (nothing changes) unless worker still holds its lease, so a stale worker whose lease was reclaimed cannot complete it.';

CREATE OR REPLACE FUNCTION picloud.fail_delivery(id bigint, worker text, error text)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_row   record;
    v_error text := left(coalesce(fail_delivery.error, 'failed'), 2000);
BEGIN
    SELECT d.app_id, d.attempts, d.max_attempts INTO v_row
      FROM picloud.deliveries d
     WHERE d.id = fail_delivery.id AND d.status = 'running'
       AND d.lease_owner = fail_delivery.worker
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'stale';
    END IF;
    UPDATE picloud.delivery_attempts a SET finished_at = now(), outcome = 'error', error = v_error
     WHERE a.app_id = v_row.app_id AND a.delivery_id = fail_delivery.id
       AND a.attempt = v_row.attempts;
    IF v_row.attempts >= v_row.max_attempts THEN
        PERFORM picloud.dead_letter_delivery(v_row.app_id, fail_delivery.id, v_error);
        RETURN 'dead';
    END IF;
    UPDATE picloud.deliveries d
       SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, last_error = v_error,
           run_at = now() + picloud.backoff_delay(v_row.attempts), updated_at = now()
     WHERE d.app_id = v_row.app_id AND d.id = fail_delivery.id;
    RETURN 'retry';
END
$$;
COMMENT ON FUNCTION picloud.fail_delivery(bigint, text, text) IS
    'Record a failed attempt. ''retry'': due again after picloud.backoff_delay(attempts); ''dead'': that was the trigger''s last attempt, a dead letter is written; ''stale'': refused, worker no longer holds the lease.';

CREATE OR REPLACE FUNCTION picloud.release_delivery(id bigint, worker text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_app     uuid;
    v_attempt integer;
BEGIN
    UPDATE picloud.deliveries d
       SET status = 'pending', attempts = d.attempts - 1, lease_owner = NULL,
           lease_expires_at = NULL, run_at = now(), updated_at = now()
     WHERE d.id = release_delivery.id AND d.status = 'running'
       AND d.lease_owner = release_delivery.worker
    RETURNING d.app_id, d.attempts + 1 INTO v_app, v_attempt;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM picloud.delivery_attempts a
     WHERE a.app_id = v_app AND a.delivery_id = release_delivery.id AND a.attempt = v_attempt;
    PERFORM pg_notify(picloud.dispatch_channel(), '');
    RETURN true;
END
$$;
COMMENT ON FUNCTION picloud.release_delivery(bigint, text) IS
    'Give back a claimed delivery whose handler never started (a dispatcher shutting down): due now, the attempt uncounted. False when worker does not hold the lease.';

CREATE OR REPLACE FUNCTION picloud.next_delivery_due() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least((SELECT min(d.run_at) FROM picloud.deliveries d WHERE d.status = 'pending'),
                 (SELECT min(d.run_at) FROM picloud.deliveries d WHERE d.status = 'running'))
$$;
COMMENT ON FUNCTION picloud.next_delivery_due() IS
    'When the next delivery becomes claimable (a retry falling due or a lease running out); NULL when none is queued.';

CREATE OR REPLACE FUNCTION picloud.prune_deliveries(older_than interval) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM picloud.deliveries d
     WHERE d.status = 'done' AND d.finished_at < now() - prune_deliveries.older_than;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION picloud.prune_deliveries(interval) IS
    'Delete deliveries that finished successfully more than older_than ago (with their attempts). Dead ones are kept with their dead letters.';
