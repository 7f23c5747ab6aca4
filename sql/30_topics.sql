-- Topics: name rules, and the control notifications that end live SSE streams when a
-- topic goes away or is closed to subscribers (on every node, whatever deleted it).

-- picloud.topic_name_valid(name), the rule itself, is defined by migration V0015 (the
-- tables' CHECKs depend on it).

CREATE OR REPLACE FUNCTION picloud.check_topic_name(name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF NOT picloud.topic_name_valid(check_topic_name.name) THEN
        RAISE EXCEPTION 'invalid topic name %: use 1-128 characters of A-Z a-z 0-9 _ . : -',
            coalesce(quote_literal(left(check_topic_name.name, 140)), 'NULL')
            USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_topic_name(text) IS
    '22023 naming the name unless picloud.topic_name_valid(name).';

CREATE OR REPLACE FUNCTION picloud.topics_notify_close() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(picloud.realtime_control_channel(), 'close ' || OLD.app_id || ' ' || OLD.name);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.topics_notify_close() IS
    'Trigger: a topic was deleted or closed to subscribers; relays end its live streams on commit.';

CREATE OR REPLACE FUNCTION picloud.topics_delete_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM picloud.messages m WHERE m.app_id = OLD.app_id AND m.topic = OLD.name;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.topics_delete_messages() IS
    'Trigger: a deleted topic takes its messages with it (picloud.messages has no foreign key, for publish speed).';

CREATE OR REPLACE TRIGGER topics_delete_messages
    AFTER DELETE ON picloud.topics
    FOR EACH ROW EXECUTE FUNCTION picloud.topics_delete_messages();

CREATE OR REPLACE TRIGGER topics_close_streams_on_delete
    AFTER DELETE ON picloud.topics
    FOR EACH ROW EXECUTE FUNCTION picloud.topics_notify_close();

-- Streams are ended when access becomes narrower (no longer external, or public -> token);
-- clients reconnect and are authorised again.
CREATE OR REPLACE TRIGGER topics_close_streams_on_restrict
    AFTER UPDATE OF external_subscribable, auth_mode ON picloud.topics
    FOR EACH ROW
    WHEN ((OLD.external_subscribable AND NOT NEW.external_subscribable)
          OR (OLD.auth_mode = 'public' AND NEW.auth_mode <> 'public'))
    EXECUTE FUNCTION picloud.topics_notify_close();

CREATE OR REPLACE FUNCTION picloud.check_auth_mode(auth_mode text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF check_auth_mode.auth_mode IS NULL OR check_auth_mode.auth_mode NOT IN ('public', 'token') THEN
        RAISE EXCEPTION 'auth_mode must be ''public'' or ''token''' USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_auth_mode(text) IS
    '22023 unless auth_mode is ''public'' (anyone may subscribe) or ''token'' (a subscriber token).';

CREATE OR REPLACE FUNCTION picloud.create_topic(
    app_id uuid, name text, external_subscribable boolean DEFAULT false,
    auth_mode text DEFAULT 'token', presence boolean DEFAULT false)
RETURNS SETOF picloud.topics
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM picloud.check_topic_name(create_topic.name);
    PERFORM picloud.check_auth_mode(create_topic.auth_mode);
    RETURN QUERY
    INSERT INTO picloud.topics AS t (app_id, name, external_subscribable, auth_mode, presence)
    VALUES (create_topic.app_id, create_topic.name,
            coalesce(create_topic.external_subscribable, false), create_topic.auth_mode,
            coalesce(create_topic.presence, false))
    RETURNING t.*;
END
$$;
COMMENT ON FUNCTION picloud.create_topic(uuid, text, boolean, text, boolean) IS
    'Create a topic (NULL flags: false; presence: who is here, picloud.presence); 22023 for a bad name or auth_mode, 23505 when it exists.';

CREATE OR REPLACE FUNCTION picloud.topic(app_id uuid, name text) RETURNS SETOF picloud.topics
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- PL/pgSQL, not an inlined SQL function: the name is checked when the function runs,
    -- after the picloud.authorize beside it in the statement, never at plan time.
    PERFORM picloud.check_topic_name(topic.name);
    RETURN QUERY SELECT t.* FROM picloud.topics t
                  WHERE t.app_id = topic.app_id AND t.name = topic.name;
END
$$;
COMMENT ON FUNCTION picloud.topic(uuid, text) IS
    'One topic of an app (22023 for a malformed name), or no row.';

CREATE OR REPLACE FUNCTION picloud.update_topic(
    app_id uuid, name text, external_subscribable boolean, auth_mode text,
    presence boolean DEFAULT NULL)
RETURNS SETOF picloud.topics
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM picloud.check_topic_name(update_topic.name);
    IF update_topic.auth_mode IS NOT NULL THEN
        PERFORM picloud.check_auth_mode(update_topic.auth_mode);
    END IF;
    RETURN QUERY
    UPDATE picloud.topics t
       SET external_subscribable = coalesce(update_topic.external_subscribable,
                                            t.external_subscribable),
           auth_mode = coalesce(update_topic.auth_mode, t.auth_mode),
           presence = coalesce(update_topic.presence, t.presence),
           updated_at = now()
     WHERE t.app_id = update_topic.app_id AND t.name = update_topic.name
    RETURNING t.*;
END
$$;
COMMENT ON FUNCTION picloud.update_topic(uuid, text, boolean, text, boolean) IS
    'Change a topic''s flags (NULL keeps a flag; presence: who is here, picloud.presence); 22023 for a malformed name or auth_mode, no row for an unknown topic. Narrowing access, or turning presence on or off, ends its live streams (triggers on picloud.topics).';

CREATE OR REPLACE FUNCTION picloud.delete_topic(app_id uuid, name text) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM picloud.check_topic_name(delete_topic.name);
    RETURN QUERY DELETE FROM picloud.topics t
                  WHERE t.app_id = delete_topic.app_id AND t.name = delete_topic.name
                 RETURNING t.name;
END
$$;
COMMENT ON FUNCTION picloud.delete_topic(uuid, text) IS
    'Delete a topic (22023 for a malformed name): its name, or no row for an unknown topic. Triggers take its messages and end its live streams on every node.';
