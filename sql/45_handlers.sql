-- Handlers and triggers: every write of the HTTP API (and of psql) goes through these
-- functions. The table CHECKs hold the field rules (names, kinds, the fields of each kind,
-- timeout and attempt ranges, known sources); these functions add who may do what:
-- SQL handlers are for instance admins, pointing a trigger at a topic handler needs
-- topics:publish. api_key is the caller's key (the HTTP layer passes the one
-- picloud.authorize checked in the same statement); NULL is the database's own caller
-- (psql), which may do everything.

CREATE OR REPLACE FUNCTION picloud.key_holds(api_key text, app_id uuid, capability text)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF key_holds.api_key IS NULL THEN
        RETURN true;
    END IF;
    PERFORM picloud.authorize(key_holds.api_key, key_holds.app_id, key_holds.capability);
    RETURN true;
EXCEPTION WHEN insufficient_privilege THEN
    RETURN false;
END
$$;
COMMENT ON FUNCTION picloud.key_holds(text, uuid, text) IS
    'Does this key hold the capability on the app (app NULL: an instance-level one)? picloud.authorize''s rule; a NULL key is the database''s own caller and holds everything.';

CREATE OR REPLACE FUNCTION picloud.check_handler_rights(
    api_key text, app_id uuid, kind text, doing text)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF check_handler_rights.kind = 'sql'
       AND NOT picloud.key_holds(check_handler_rights.api_key, NULL, 'instance:admin') THEN
        RAISE EXCEPTION '% an sql handler needs instance:admin', check_handler_rights.doing
            USING ERRCODE = '42501';
    END IF;
    IF check_handler_rights.kind = 'topic'
       AND NOT picloud.key_holds(check_handler_rights.api_key, check_handler_rights.app_id,
                                 'topics:publish') THEN
        -- A topic handler publishes whatever its triggers' sources carry: only a key that
        -- may publish to the app's topics may point one anywhere.
        RAISE EXCEPTION 'a topic handler needs triggers:manage and topics:publish'
            USING ERRCODE = '42501';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_handler_rights(text, uuid, text, text) IS
    '42501 unless the key may manage a handler of this kind: sql handlers need instance:admin, topic handlers topics:publish on the app. doing names the action in the message.';

CREATE OR REPLACE FUNCTION picloud.create_handler(
    app_id uuid, name text, kind text, url text DEFAULT NULL, secret text DEFAULT NULL,
    function text DEFAULT NULL, topic text DEFAULT NULL, timeout_ms integer DEFAULT NULL,
    api_key text DEFAULT NULL)
RETURNS SETOF picloud.handlers
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM picloud.check_handler_rights(create_handler.api_key, create_handler.app_id,
                                         create_handler.kind, 'registering');
    -- One INSERT (sql/15_row_defaults.sql): timeout_ms not given is the column's default;
    -- the BEFORE trigger generates a webhook's secret.
    RETURN QUERY EXECUTE format(
        'INSERT INTO picloud.handlers AS h (app_id, name, kind, url, secret, function, topic,'
        ' timeout_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, %s) RETURNING h.*',
        picloud.value_or_default(create_handler.timeout_ms, 8))
    USING create_handler.app_id, create_handler.name, create_handler.kind, create_handler.url,
          create_handler.secret, create_handler.function, create_handler.topic,
          create_handler.timeout_ms;
END
$$;
COMMENT ON FUNCTION picloud.create_handler(uuid, text, text, text, text, text, text, integer, text) IS
    'Register a webhook (url; secret generated when NULL), sql (function) or topic (topic) handler of an app; the table''s CHECKs refuse fields of another kind (23514). 42501 when api_key may not manage that kind. Returns the row, secret included (shown only here).';

CREATE OR REPLACE FUNCTION picloud.update_handler(
    app_id uuid, id uuid, name text DEFAULT NULL, url text DEFAULT NULL,
    secret text DEFAULT NULL, function text DEFAULT NULL, topic text DEFAULT NULL,
    timeout_ms integer DEFAULT NULL, kind text DEFAULT NULL, api_key text DEFAULT NULL)
RETURNS SETOF picloud.handlers
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_handler picloud.handlers;
BEGIN
    SELECT * INTO v_handler FROM picloud.handlers h
     WHERE h.app_id = update_handler.app_id AND h.id = update_handler.id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such handler' USING ERRCODE = 'P0002';
    END IF;
    IF update_handler.kind IS NOT NULL AND update_handler.kind <> v_handler.kind THEN
        RAISE EXCEPTION 'a handler''s kind cannot change; create another handler'
            USING ERRCODE = '22023';
    END IF;
    PERFORM picloud.check_handler_rights(update_handler.api_key, update_handler.app_id,
                                         v_handler.kind, 'changing');
    UPDATE picloud.handlers h
       SET name = coalesce(update_handler.name, h.name), url = coalesce(update_handler.url, h.url),
           secret = coalesce(update_handler.secret, h.secret),
           function = coalesce(update_handler.function, h.function),
           topic = coalesce(update_handler.topic, h.topic),
           timeout_ms = coalesce(update_handler.timeout_ms, h.timeout_ms)
     WHERE h.app_id = update_handler.app_id AND h.id = update_handler.id
    RETURNING * INTO v_handler;
    RETURN NEXT v_handler;
END
$$;
COMMENT ON FUNCTION picloud.update_handler(uuid, uuid, text, text, text, text, text, integer, text, text) IS
    'Change a handler (NULL leaves a field as it is): P0002 when there is none, 22023 when kind is given and differs (a kind never changes), 42501 when api_key may not manage its kind, 23514 for fields of another kind.';

CREATE OR REPLACE FUNCTION picloud.delete_handler(app_id uuid, id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id uuid;
BEGIN
    -- A handler that triggers still use is kept: the foreign key raises 23503.
    DELETE FROM picloud.handlers h
     WHERE h.app_id = delete_handler.app_id AND h.id = delete_handler.id
    RETURNING h.id INTO v_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such handler' USING ERRCODE = 'P0002';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION picloud.delete_handler(uuid, uuid) IS
    'Delete a handler no trigger uses (23503 while one does; P0002 when there is none); returns its id.';

CREATE OR REPLACE FUNCTION picloud.check_trigger_target(
    api_key text, app_id uuid, handler_id uuid)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_kind text;
BEGIN
    SELECT h.kind INTO v_kind FROM picloud.handlers h
     WHERE h.app_id = check_trigger_target.app_id AND h.id = check_trigger_target.handler_id;
    IF v_kind = 'topic' THEN
        PERFORM picloud.check_handler_rights(check_trigger_target.api_key,
                                             check_trigger_target.app_id, v_kind, 'using');
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_trigger_target(text, uuid, uuid) IS
    '42501 when the handler a trigger runs (or would run) is a topic handler and api_key lacks topics:publish on the app.';

CREATE OR REPLACE FUNCTION picloud.check_trigger_source(source text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF check_trigger_source.source IS NULL
       OR NOT check_trigger_source.source = ANY (picloud.event_sources()) THEN
        RAISE EXCEPTION 'unknown source %: a trigger listens to one of %',
            coalesce(quote_literal(left(check_trigger_source.source, 64)), 'NULL'),
            array_to_string(picloud.event_sources(), ', ')
            USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_trigger_source(text) IS
    '22023 naming the known sources (picloud.event_sources()) unless source is one of them.';

CREATE OR REPLACE FUNCTION picloud.create_trigger(
    app_id uuid, name text, source text, handler_id uuid, filter jsonb DEFAULT NULL,
    max_attempts integer DEFAULT NULL, enabled boolean DEFAULT NULL, api_key text DEFAULT NULL)
RETURNS SETOF picloud.triggers
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM picloud.check_trigger_source(create_trigger.source);
    PERFORM picloud.check_trigger_target(create_trigger.api_key, create_trigger.app_id,
                                         create_trigger.handler_id);
    -- One INSERT (sql/15_row_defaults.sql): what is not given takes the columns' defaults
    -- (filter {}, max_attempts, enabled).
    RETURN QUERY EXECUTE format(
        'INSERT INTO picloud.triggers AS t (app_id, name, source, handler_id, filter,'
        ' max_attempts, enabled) VALUES ($1, $2, $3, $4, %s, %s, %s) RETURNING t.*',
        picloud.value_or_default(create_trigger.filter, 5),
        picloud.value_or_default(create_trigger.max_attempts, 6),
        picloud.value_or_default(create_trigger.enabled, 7))
    USING create_trigger.app_id, create_trigger.name, create_trigger.source,
          create_trigger.handler_id, create_trigger.filter, create_trigger.max_attempts,
          create_trigger.enabled;
END
$$;
COMMENT ON FUNCTION picloud.create_trigger(uuid, text, text, uuid, jsonb, integer, boolean, text) IS
    'Create a trigger: run the app''s handler when the source changes (22023 for an unknown source or a bad filter, 23503 for an unknown handler, 23514 for a bad name or max_attempts, 42501 when the handler is a topic handler and api_key lacks topics:publish).';

CREATE OR REPLACE FUNCTION picloud.update_trigger(
    app_id uuid, id uuid, name text DEFAULT NULL, handler_id uuid DEFAULT NULL,
    filter jsonb DEFAULT NULL, max_attempts integer DEFAULT NULL, enabled boolean DEFAULT NULL,
    source text DEFAULT NULL, api_key text DEFAULT NULL)
RETURNS SETOF picloud.triggers
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_trigger picloud.triggers;
BEGIN
    SELECT * INTO v_trigger FROM picloud.triggers t
     WHERE t.app_id = update_trigger.app_id AND t.id = update_trigger.id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such trigger' USING ERRCODE = 'P0002';
    END IF;
    IF update_trigger.source IS NOT NULL THEN
        RAISE EXCEPTION 'a trigger''s source cannot change; create another trigger'
            USING ERRCODE = '22023';
    END IF;
    -- Changing a trigger that runs a topic handler, or pointing one at it, needs
    -- topics:publish.
    PERFORM picloud.check_trigger_target(update_trigger.api_key, update_trigger.app_id,
                                         v_trigger.handler_id);
    PERFORM picloud.check_trigger_target(update_trigger.api_key, update_trigger.app_id,
                                         update_trigger.handler_id);
    UPDATE picloud.triggers t
       SET name = coalesce(update_trigger.name, t.name),
           handler_id = coalesce(update_trigger.handler_id, t.handler_id),
           filter = coalesce(update_trigger.filter, t.filter),
           max_attempts = coalesce(update_trigger.max_attempts, t.max_attempts),
           enabled = coalesce(update_trigger.enabled, t.enabled)
     WHERE t.app_id = update_trigger.app_id AND t.id = update_trigger.id
    RETURNING * INTO v_trigger;
    RETURN NEXT v_trigger;
END
$$;
COMMENT ON FUNCTION picloud.update_trigger(uuid, uuid, text, uuid, jsonb, integer, boolean, text, text) IS
    'Change a trigger (NULL leaves a field as it is): P0002 when there is none, 22023 when a source is given (it never changes) or the filter is bad, 23503 for an unknown handler, 42501 when its current or new handler is a topic handler and api_key lacks topics:publish.';

CREATE OR REPLACE FUNCTION picloud.delete_trigger(app_id uuid, id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id uuid;
BEGIN
    DELETE FROM picloud.triggers t
     WHERE t.app_id = delete_trigger.app_id AND t.id = delete_trigger.id
    RETURNING t.id INTO v_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such trigger' USING ERRCODE = 'P0002';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION picloud.delete_trigger(uuid, uuid) IS
    'Delete a trigger (P0002 when there is none); deliveries it queued still run. Returns its id.';
