-- Dead letters: fan-out to dead_letter triggers, retry.

CREATE OR REPLACE FUNCTION picloud.dead_letters_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A dead letter of a dead_letter delivery fans out no further: no cascades.
    IF NEW.source <> 'dead_letter' THEN
        PERFORM picloud.enqueue_event(NEW.app_id, 'dead_letter', NEW.source, jsonb_build_object(
            'type', 'dead',
            'dead_letter_id', NEW.id,
            'delivery_id', NEW.delivery_id,
            'trigger_id', NEW.trigger_id,
            'handler_id', NEW.handler_id,
            'source', NEW.source,
            'subject', NEW.subject,
            'event', NEW.event,
            'attempts', NEW.attempts,
            'last_error', NEW.last_error,
            'created_at', NEW.created_at));
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.dead_letters_fan_out() IS
    'AFTER INSERT on dead_letters: enqueue_event(app, ''dead_letter'', <original source>, {"type": "dead", ...}), except for dead letters whose delivery came from the dead_letter source.';

DROP TRIGGER IF EXISTS dead_letters_fan_out ON picloud.dead_letters;
CREATE TRIGGER dead_letters_fan_out AFTER INSERT ON picloud.dead_letters
    FOR EACH ROW EXECUTE FUNCTION picloud.dead_letters_fan_out();

-- SQLSTATE of a retry refused because the dead letter was retried already (HTTP 409).
CREATE OR REPLACE FUNCTION picloud.already_retried_sqlstate() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'PC410' $$;
COMMENT ON FUNCTION picloud.already_retried_sqlstate() IS
    'The SQLSTATE (PC410) retry_dead_letter raises for a dead letter retried already; its DETAIL is the delivery that retry created.';

CREATE OR REPLACE FUNCTION picloud.redrive_dead_letters(app_id uuid, ids bigint[])
RETURNS TABLE (dead_letter_id bigint, delivery_id bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- The caller has locked the rows. One fresh delivery per dead letter: attempts from
    -- zero, the trigger's current max_attempts (the old count when the trigger is gone).
    RETURN QUERY
    WITH fresh AS (
        INSERT INTO picloud.deliveries
            (app_id, trigger_id, handler_id, source, subject, event, max_attempts, retry_of)
        SELECT dl.app_id, dl.trigger_id, dl.handler_id, dl.source, dl.subject, dl.event,
               coalesce(t.max_attempts, greatest(dl.attempts, 1)), dl.id
          FROM picloud.dead_letters dl
          LEFT JOIN picloud.triggers t ON t.app_id = dl.app_id AND t.id = dl.trigger_id
         WHERE dl.app_id = redrive_dead_letters.app_id AND dl.id = ANY (redrive_dead_letters.ids)
         ORDER BY dl.id
        RETURNING deliveries.id AS v_delivery, deliveries.retry_of AS v_dead_letter
    )
    UPDATE picloud.dead_letters dl SET retried_at = now(), retry_delivery_id = fresh.v_delivery
      FROM fresh
     WHERE dl.app_id = redrive_dead_letters.app_id AND dl.id = fresh.v_dead_letter
    RETURNING dl.id, dl.retry_delivery_id;
    -- (The inserted deliveries wake the dispatchers at commit: sql/40_outbox.sql.)
END
$$;
COMMENT ON FUNCTION picloud.redrive_dead_letters(uuid, bigint[]) IS
    'Internal to retry_dead_letter(s): enqueue a fresh delivery for each given dead letter of the app (rows the caller has locked), mark them retried and wake the dispatchers. Returns (dead_letter_id, delivery_id) pairs.';

CREATE OR REPLACE FUNCTION picloud.retry_dead_letter(id bigint, force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_dl       picloud.dead_letters;
    v_delivery bigint;
BEGIN
    -- The row lock serialises concurrent retries: the second one sees retried_at set.
    SELECT * INTO v_dl FROM picloud.dead_letters dl WHERE dl.id = retry_dead_letter.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no dead letter %', retry_dead_letter.id USING ERRCODE = 'P0002';
    END IF;
    IF v_dl.retried_at IS NOT NULL AND NOT coalesce(retry_dead_letter.force, false) THEN
        RAISE EXCEPTION 'dead letter % was already retried as delivery %',
                v_dl.id, v_dl.retry_delivery_id
            USING ERRCODE = picloud.already_retried_sqlstate(),
                  DETAIL = coalesce(v_dl.retry_delivery_id::text, ''),
                  HINT = 'retry with force to enqueue it again';
    END IF;
    SELECT r.delivery_id INTO v_delivery
      FROM picloud.redrive_dead_letters(v_dl.app_id, ARRAY[v_dl.id]) r;
    RETURN v_delivery;
END
$$;
COMMENT ON FUNCTION picloud.retry_dead_letter(bigint, boolean) IS
    'Re-enqueue a dead letter as a fresh delivery (attempts from zero, the trigger''s current max_attempts) and mark it retried; returns the new delivery id. Once only: a dead letter retried already raises PC410 (DETAIL = the delivery that retry created) unless force. P0002 when there is no such dead letter.';

CREATE OR REPLACE FUNCTION picloud.check_dead_letter_filter(
    source text, since timestamptz, until timestamptz)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF check_dead_letter_filter.source IS NOT NULL
       AND NOT check_dead_letter_filter.source = ANY (picloud.event_sources()) THEN
        RAISE EXCEPTION 'unknown source %; one of %', quote_literal(left(check_dead_letter_filter.source, 64)),
            array_to_string(picloud.event_sources(), ', ')
            USING ERRCODE = '22023';
    END IF;
    IF check_dead_letter_filter.since > check_dead_letter_filter.until THEN
        RAISE EXCEPTION 'since (%) is after until (%)',
            check_dead_letter_filter.since, check_dead_letter_filter.until
            USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_dead_letter_filter(text, timestamptz, timestamptz) IS
    'The rule of a bulk-redrive filter: a known source (or none), since not after until; 22023 otherwise.';

CREATE OR REPLACE FUNCTION picloud.dead_letters_to_retry(
    app_id uuid, source text DEFAULT NULL, since timestamptz DEFAULT NULL,
    until timestamptz DEFAULT NULL, handler_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM picloud.check_dead_letter_filter(dead_letters_to_retry.source,
        dead_letters_to_retry.since, dead_letters_to_retry.until);
    RETURN (SELECT count(*) FROM picloud.dead_letters dl
             WHERE dl.app_id = dead_letters_to_retry.app_id AND dl.retried_at IS NULL
               AND (dead_letters_to_retry.source IS NULL OR dl.source = dead_letters_to_retry.source)
               AND (dead_letters_to_retry.since IS NULL OR dl.created_at >= dead_letters_to_retry.since)
               AND (dead_letters_to_retry.until IS NULL OR dl.created_at < dead_letters_to_retry.until)
               AND (dead_letters_to_retry.handler_id IS NULL
                    OR dl.handler_id = dead_letters_to_retry.handler_id));
END
$$;
COMMENT ON FUNCTION picloud.dead_letters_to_retry(uuid, text, timestamptz, timestamptz, uuid) IS
    'How many of an app''s dead letters retry_dead_letters would retry with this filter (not yet retried; source; created_at in [since, until); handler). 22023 for an unknown source or since after until.';

CREATE OR REPLACE FUNCTION picloud.retry_dead_letters(
    app_id uuid, source text DEFAULT NULL, since timestamptz DEFAULT NULL,
    until timestamptz DEFAULT NULL, handler_id uuid DEFAULT NULL, "limit" integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF retry_dead_letters."limit" IS NOT NULL AND retry_dead_letters."limit" < 1 THEN
        RAISE EXCEPTION 'limit must be at least 1, not %', retry_dead_letters."limit"
            USING ERRCODE = '22023';
    END IF;
    PERFORM picloud.check_dead_letter_filter(retry_dead_letters.source,
        retry_dead_letters.since, retry_dead_letters.until);
    -- Only dead letters not retried yet, so a repeated call (or a concurrent one: SKIP LOCKED)
    -- never enqueues one twice.
    SELECT array_agg(p.id) INTO v_ids FROM (
        SELECT dl.id FROM picloud.dead_letters dl
         WHERE dl.app_id = retry_dead_letters.app_id AND dl.retried_at IS NULL
           AND (retry_dead_letters.source IS NULL OR dl.source = retry_dead_letters.source)
           AND (retry_dead_letters.since IS NULL OR dl.created_at >= retry_dead_letters.since)
           AND (retry_dead_letters.until IS NULL OR dl.created_at < retry_dead_letters.until)
           AND (retry_dead_letters.handler_id IS NULL OR dl.handler_id = retry_dead_letters.handler_id)
         ORDER BY dl.id
         LIMIT retry_dead_letters."limit"
           FOR UPDATE SKIP LOCKED) p;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    RETURN (SELECT count(*) FROM picloud.redrive_dead_letters(retry_dead_letters.app_id, v_ids));
END
$$;
COMMENT ON FUNCTION picloud.retry_dead_letters(uuid, text, timestamptz, timestamptz, uuid, integer) IS
    'Bulk redrive: retry (as retry_dead_letter does) at most "limit" (NULL: all) of an app''s dead letters not retried yet, optionally only of one source, created in [since, until), of one handler; oldest first. Returns how many it retried. Idempotent with retry_dead_letter: each dead letter is retried once. Call it repeatedly with a limit to work in batches.';

CREATE OR REPLACE FUNCTION picloud.retry_dead_letter(app_id uuid, id bigint, force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Another app's dead letter is no dead letter of this app.
    IF NOT EXISTS (SELECT FROM picloud.dead_letters dl
                    WHERE dl.app_id = retry_dead_letter.app_id AND dl.id = retry_dead_letter.id) THEN
        RAISE EXCEPTION 'no such dead letter' USING ERRCODE = 'P0002';
    END IF;
    RETURN picloud.retry_dead_letter(retry_dead_letter.id, retry_dead_letter.force);
END
$$;
COMMENT ON FUNCTION picloud.retry_dead_letter(uuid, bigint, boolean) IS
    'retry_dead_letter(id, force) for a dead letter of this app (P0002 when the app has no such dead letter; PC410 when retried already and not force).';

CREATE OR REPLACE FUNCTION picloud.discard_dead_letter(app_id uuid, id bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id bigint;
BEGIN
    DELETE FROM picloud.dead_letters dl
     WHERE dl.app_id = discard_dead_letter.app_id AND dl.id = discard_dead_letter.id
    RETURNING dl.id INTO v_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such dead letter' USING ERRCODE = 'P0002';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION picloud.discard_dead_letter(uuid, bigint) IS
    'Delete one of an app''s dead letters (P0002 when there is none); returns its id.';

CREATE OR REPLACE FUNCTION picloud.list_dead_letters(app_id uuid, source text, page_size integer)
RETURNS SETOF picloud.dead_letters
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM picloud.check_dead_letter_filter(list_dead_letters.source, NULL, NULL);
    RETURN QUERY
    SELECT dl.* FROM picloud.dead_letters dl
     WHERE dl.app_id = list_dead_letters.app_id
       AND (list_dead_letters.source IS NULL OR dl.source = list_dead_letters.source)
     ORDER BY dl.id DESC
     LIMIT list_dead_letters.page_size;
END
$$;
COMMENT ON FUNCTION picloud.list_dead_letters(uuid, text, integer) IS
    'An app''s dead letters, newest first, optionally of one source (22023 for an unknown one).';
