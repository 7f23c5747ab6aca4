-- The outbox fan-out: triggers match events, enqueue_event writes one delivery per match.

-- picloud.event_sources(), the list of trigger sources, is versioned DDL: a CHECK on
-- picloud.triggers calls it (migrations/V0016).

CREATE OR REPLACE FUNCTION picloud.glob_to_like(pattern text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- LIKE's own wildcards are escaped; '*' (any run of characters) becomes '%'.
    SELECT replace(replace(replace(replace(glob_to_like.pattern, '\', '\\'), '%', '\%'),
                           '_', '\_'), '*', '%')
$$;
COMMENT ON FUNCTION picloud.glob_to_like(text) IS
    'A trigger subject glob (''*'' matches any run of characters, everything else literally) as a LIKE pattern.';

CREATE OR REPLACE FUNCTION picloud.trigger_filter_matches(filter jsonb, subject text, event jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (NOT (trigger_filter_matches.filter ? 'match')
            OR trigger_filter_matches.subject
               LIKE picloud.glob_to_like(trigger_filter_matches.filter ->> 'match'))
       AND (NOT (trigger_filter_matches.filter ? 'types')
            OR coalesce((trigger_filter_matches.filter -> 'types')
                        ? (trigger_filter_matches.event ->> 'type'), false))
$$;
COMMENT ON FUNCTION picloud.trigger_filter_matches(jsonb, text, jsonb) IS
    'Does a trigger filter {"match": glob, "types": [...]} (both optional) accept this subject and event (event->>''type'')?';

CREATE OR REPLACE FUNCTION picloud.check_trigger_filter(filter jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_key text;
BEGIN
    IF check_trigger_filter.filter IS NULL OR jsonb_typeof(check_trigger_filter.filter) <> 'object' THEN
        RAISE EXCEPTION 'filter must be a JSON object' USING ERRCODE = '22023';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(check_trigger_filter.filter) LOOP
        IF v_key NOT IN ('match', 'types') THEN
            RAISE EXCEPTION 'unknown filter key %; filters take "match" and "types"', v_key
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    IF check_trigger_filter.filter ? 'match' AND (
        jsonb_typeof(check_trigger_filter.filter -> 'match') <> 'string'
        OR length(check_trigger_filter.filter ->> 'match') NOT BETWEEN 1 AND 512) THEN
        RAISE EXCEPTION 'filter "match" must be a string of 1 to 512 characters (''*'' matches any run)'
            USING ERRCODE = '22023';
    END IF;
    IF check_trigger_filter.filter ? 'types' AND (
        jsonb_typeof(check_trigger_filter.filter -> 'types') <> 'array'
        OR jsonb_array_length(check_trigger_filter.filter -> 'types') = 0
        OR EXISTS (SELECT 1 FROM jsonb_array_elements(check_trigger_filter.filter -> 'types') e
                    WHERE jsonb_typeof(e) <> 'string')) THEN
        RAISE EXCEPTION 'filter "types" must be a non-empty list of event type strings'
            USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_trigger_filter(jsonb) IS
    'Raise 22023 unless the filter is {"match": "<glob>"?, "types": ["<type>", ...]?}.';

CREATE OR REPLACE FUNCTION picloud.triggers_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM picloud.check_trigger_filter(NEW.filter);
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION picloud.triggers_validate() IS
    'BEFORE INSERT/UPDATE on triggers: validates the filter and stamps updated_at.';

DROP TRIGGER IF EXISTS triggers_validate ON picloud.triggers;
CREATE TRIGGER triggers_validate BEFORE INSERT OR UPDATE ON picloud.triggers
    FOR EACH ROW EXECUTE FUNCTION picloud.triggers_validate();

CREATE OR REPLACE FUNCTION picloud.sql_handler_schemas() RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    -- plpgsql, not sql: the plan is cached (an SQL function's body is planned per call,
    -- which cost ~50 us, once per batch of SQL handler runs).
    RETURN ARRAY(SELECT btrim(s) FROM regexp_split_to_table(
        coalesce(nullif(current_setting('picloud.sql_handler_schemas', true), ''),
                 'picloud_handlers'), ',') s WHERE btrim(s) <> '');
END
$$;
COMMENT ON FUNCTION picloud.sql_handler_schemas() IS
    'Schemas SQL handlers may live in: the session setting picloud.sql_handler_schemas (the server sets it from PICLOUD_SQL_HANDLER_SCHEMAS), else picloud_handlers.';

CREATE OR REPLACE FUNCTION picloud.checked_sql_handler(function text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_name text[];
BEGIN
    v_name := regexp_match(checked_sql_handler.function,
                           '^([a-z_][a-z0-9_]{0,62})\.([a-z_][a-z0-9_]{0,62})$');
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'bad SQL handler name %: it must be "schema.name" in lower case letters, digits and _',
            quote_literal(checked_sql_handler.function) USING ERRCODE = '22023';
    END IF;
    IF NOT v_name[1] = ANY (picloud.sql_handler_schemas()) THEN
        RAISE EXCEPTION 'SQL handlers must live in one of the schemas % (PICLOUD_SQL_HANDLER_SCHEMAS), not %',
            array_to_string(picloud.sql_handler_schemas(), ', '), quote_literal(v_name[1])
            USING ERRCODE = '22023';
    END IF;
    RETURN format('%I.%I', v_name[1], v_name[2]);
END
$$;
COMMENT ON FUNCTION picloud.checked_sql_handler(text) IS
    'The quoted schema.function of an SQL handler, after checking the name (schema.function, plain lower-case identifiers) and that the schema is in picloud.sql_handler_schemas(); 22023 otherwise. Used when a handler is registered and each time one runs (the setting may have changed).';

CREATE OR REPLACE FUNCTION picloud.handlers_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'webhook' AND NEW.secret IS NULL THEN
        NEW.secret := encode(picloud.random_bytes_32(), 'hex');
    END IF;
    IF NEW.kind = 'sql' AND NEW.function IS NOT NULL
       AND to_regprocedure(picloud.checked_sql_handler(NEW.function) || '(jsonb)') IS NULL THEN
        RAISE EXCEPTION 'no function %(jsonb)', NEW.function USING ERRCODE = '22023';
    END IF;
    IF NEW.kind = 'topic' AND NEW.topic IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.topic IS DISTINCT FROM OLD.topic)
       AND NOT EXISTS (SELECT FROM picloud.topics t
                        WHERE t.app_id = NEW.app_id AND t.name = NEW.topic) THEN
        RAISE EXCEPTION 'no topic %', quote_literal(left(NEW.topic, 140))
            USING ERRCODE = '22023';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION picloud.handlers_validate() IS
    'BEFORE INSERT/UPDATE on handlers: generates a webhook secret when none is given; an sql handler must name an existing f(jsonb) in an allowed schema, a topic handler an existing topic of its app.';

DROP TRIGGER IF EXISTS handlers_validate ON picloud.handlers;
CREATE TRIGGER handlers_validate BEFORE INSERT OR UPDATE ON picloud.handlers
    FOR EACH ROW EXECUTE FUNCTION picloud.handlers_validate();

CREATE OR REPLACE FUNCTION picloud.publish_event(
    app_id uuid, topic text, source text, subject text, event jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_message jsonb;
BEGIN
    -- The topic row is locked first (as the publish would): a topic deleted meanwhile, or
    -- never created, is skipped rather than failing the change that caused the event.
    PERFORM 1 FROM picloud.topics t
      WHERE t.app_id = publish_event.app_id AND t.name = publish_event.topic
        FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_message := jsonb_build_object('source', publish_event.source,
                                    'subject', publish_event.subject) || publish_event.event;
    IF octet_length(v_message::text) > picloud.max_message_bytes() THEN
        -- Too large for a message: its short scalar fields (type, key, id, version, path,
        -- ...) and "truncated": true, so a subscriber knows to fetch the row itself.
        v_message := jsonb_build_object('source', publish_event.source,
                                        'subject', publish_event.subject)
            || coalesce((SELECT jsonb_object_agg(e.k, e.v)
                           FROM jsonb_each(publish_event.event) e(k, v)
                          WHERE jsonb_typeof(e.v) IN ('string', 'number', 'boolean', 'null')
                            AND octet_length(e.v::text) <= 256), '{}'::jsonb)
            || jsonb_build_object('truncated', true);
        IF octet_length(v_message::text) > picloud.max_message_bytes() THEN
            RETURN NULL;
        END IF;
    END IF;
    -- fan_out => false: the loop guard. What a topic handler publishes does not fan out to
    -- pubsub triggers again (one level, like dead letters).
    RETURN (SELECT a.first_id + 1
              FROM picloud.append_messages(publish_event.app_id, publish_event.topic,
                                           v_message, NULL, false, true) a);
END
$$;
COMMENT ON FUNCTION picloud.publish_event(uuid, text, text, text, jsonb) IS
    'What a topic handler does, inside the transaction of the change: publish {"source", "subject"} || event to the topic, without pubsub fan-out (loop guard). An event larger than picloud.max_message_bytes() is sent as its short scalar fields plus "truncated": true. A missing topic is skipped (NULL); otherwise the sequence number.';

CREATE OR REPLACE FUNCTION picloud.enqueue_event(app_id uuid, source text, subject text, event jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count  integer;
    v_topics boolean;  -- does the app have topic handlers?
    v_topic  text;
BEGIN
    IF enqueue_event.app_id IS NULL OR enqueue_event.subject IS NULL THEN
        RAISE EXCEPTION 'app_id and subject are required' USING ERRCODE = '22023';
    END IF;
    IF enqueue_event.source IS NULL OR NOT enqueue_event.source = ANY (picloud.event_sources()) THEN
        RAISE EXCEPTION 'unknown event source %', enqueue_event.source USING ERRCODE = '22023';
    END IF;
    IF enqueue_event.event IS NULL OR jsonb_typeof(enqueue_event.event) <> 'object' THEN
        RAISE EXCEPTION 'event must be a JSON object' USING ERRCODE = '22023';
    END IF;
    -- Most changes have no trigger to fan out to (a kv write of an app without kv
    -- triggers): one probe of the partial index on enabled triggers ends those here.
    IF NOT EXISTS (SELECT FROM picloud.triggers t
                    WHERE t.app_id = enqueue_event.app_id AND t.source = enqueue_event.source
                      AND t.enabled) THEN
        RETURN 0;
    END IF;
    -- Topic handlers publish here and now, in this transaction, and get no delivery. Most
    -- apps have none: one probe of the app's handlers spares them the join and the loop.
    v_topics := EXISTS (SELECT FROM picloud.handlers h
                         WHERE h.app_id = enqueue_event.app_id AND h.kind = 'topic');
    INSERT INTO picloud.deliveries
        (app_id, trigger_id, handler_id, source, subject, event, max_attempts)
    SELECT t.app_id, t.id, t.handler_id, enqueue_event.source, enqueue_event.subject,
           enqueue_event.event, t.max_attempts
      FROM picloud.triggers t
     WHERE t.app_id = enqueue_event.app_id
       AND t.source = enqueue_event.source
       AND t.enabled
       AND picloud.trigger_filter_matches(t.filter, enqueue_event.subject, enqueue_event.event)
       AND (NOT v_topics
            OR NOT EXISTS (SELECT FROM picloud.handlers h
                            WHERE h.app_id = t.app_id AND h.id = t.handler_id
                              AND h.kind = 'topic'));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    -- (The dispatchers' wake-up is sent at commit: deliveries_wake_dispatchers.)
    IF v_topics THEN
        FOR v_topic IN
            SELECT h.topic
              FROM picloud.triggers t
              JOIN picloud.handlers h ON h.app_id = t.app_id AND h.id = t.handler_id
             WHERE t.app_id = enqueue_event.app_id
               AND t.source = enqueue_event.source
               AND t.enabled
               AND h.kind = 'topic'
               AND picloud.trigger_filter_matches(t.filter, enqueue_event.subject,
                                                  enqueue_event.event)
             ORDER BY t.id
        LOOP
            PERFORM picloud.publish_event(enqueue_event.app_id, v_topic, enqueue_event.source,
                                          enqueue_event.subject, enqueue_event.event);
        END LOOP;
    END IF;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION picloud.enqueue_event(uuid, text, text, jsonb) IS
    'Fan-out, in the caller''s transaction: every enabled trigger of this app and source whose filter matches subject and event either publishes the event at once (topic handlers, picloud.publish_event) or gets one delivery (webhook and sql handlers; the dispatchers are woken on commit, picloud.wake_on_commit). Returns how many deliveries were enqueued.';

-- Every enqueued delivery wakes the dispatchers at commit, at most one committing
-- transaction carrying the NOTIFY (sql/29_wakeups.sql).
DROP TRIGGER IF EXISTS deliveries_wake_dispatchers ON picloud.deliveries;
CREATE CONSTRAINT TRIGGER deliveries_wake_dispatchers AFTER INSERT ON picloud.deliveries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION picloud.wake_on_commit('dispatch');
