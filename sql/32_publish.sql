-- Transactional publish into the message log, and its retention pruning.

CREATE OR REPLACE FUNCTION picloud.max_message_bytes() RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('picloud.max_message_bytes', true), '')::integer, 65536)
$$;
COMMENT ON FUNCTION picloud.max_message_bytes() IS
    'Largest message picloud.publish accepts, in bytes of its JSON text: the session setting picloud.max_message_bytes (the server sets it from PICLOUD_MAX_MESSAGE_BYTES), else 65536.';

CREATE OR REPLACE FUNCTION picloud.max_batch_messages() RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('picloud.max_batch_messages', true), '')::integer, 1000)
$$;
COMMENT ON FUNCTION picloud.max_batch_messages() IS
    'Most messages picloud.publish_batch takes in one call: the session setting picloud.max_batch_messages (the server sets it from PICLOUD_MAX_BATCH_MESSAGES), else 1000.';

CREATE OR REPLACE FUNCTION picloud.append_messages(
    app_id uuid, topic text, messages jsonb, from_subject text DEFAULT NULL,
    fan_out boolean DEFAULT true, single boolean DEFAULT false,
    OUT first_id bigint, OUT published_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer;
    v_limit integer := picloud.max_message_bytes();
    v_index integer;  -- of the first message of a batch over the limit
    v_size  integer;
BEGIN
    -- The one publish path: publish, publish_batch, token publishes and topic handlers.
    -- single: `messages` is one message, not an array of them. (Not a set-returning
    -- function, and a single message is not wrapped in an array: both cost a measurable
    -- part of a single publish. The ids are first_id + 1 .. first_id + n.)
    IF append_messages.single THEN
        IF append_messages.messages IS NULL THEN
            RAISE EXCEPTION 'message must not be NULL (JSON null is ''null''::jsonb)'
                USING ERRCODE = '22023';
        END IF;
        v_count := 1;
        v_size := octet_length(append_messages.messages::text);
    ELSE
        IF append_messages.messages IS NULL
           OR jsonb_typeof(append_messages.messages) <> 'array' THEN
            RAISE EXCEPTION 'messages must be a JSON array' USING ERRCODE = '22023';
        END IF;
        v_count := jsonb_array_length(append_messages.messages);
        IF v_count = 0 OR v_count > picloud.max_batch_messages() THEN
            RAISE EXCEPTION 'a batch holds 1 to % messages, not %',
                picloud.max_batch_messages(), v_count USING ERRCODE = '22023';
        END IF;
        SELECT e.i - 1, octet_length(e.m::text) INTO v_index, v_size
          FROM jsonb_array_elements(append_messages.messages) WITH ORDINALITY e(m, i)
         WHERE octet_length(e.m::text) > v_limit
         ORDER BY e.i LIMIT 1;
    END IF;
    IF v_size > v_limit THEN
        RAISE EXCEPTION 'message %is % bytes, more than the limit of % bytes',
            coalesce(v_index || ' ', ''), v_size, v_limit USING ERRCODE = '54000';
    END IF;
    -- The counter row lock serialises publishers of one topic until they commit, so
    -- sequence numbers are handed out, and become visible, in commit order without gaps
    -- (a batch takes consecutive ones). It also keeps the topic from being deleted under
    -- this publish (no orphan rows).
    UPDATE picloud.topics t SET last_seq = t.last_seq + v_count
     WHERE t.app_id = append_messages.app_id AND t.name = append_messages.topic
    RETURNING t.last_seq - v_count INTO first_id;
    IF NOT FOUND THEN
        PERFORM picloud.check_topic_name(append_messages.topic);  -- (only when not found)
        RAISE EXCEPTION 'no such topic' USING ERRCODE = 'P0002';
    END IF;
    -- Taken under the lock, so published_at also grows with seq within a topic.
    published_at := clock_timestamp();
    -- The wake-up is decided at commit (picloud.wake_on_commit, a deferred trigger), so one
    -- transaction arms it once however many appends it makes; it names the last of them.
    -- Armed before the INSERT: the trigger's WHEN reads wake_first.
    IF coalesce(current_setting('picloud.wake_payload_realtime', true), '') = '' THEN
        PERFORM set_config('picloud.wake_first', (first_id + 1)::text, true);
    END IF;
    PERFORM set_config('picloud.wake_payload_realtime',
                       append_messages.app_id || ' ' || (first_id + v_count) || ' '
                       || append_messages.topic, true);
    IF append_messages.single THEN
        INSERT INTO picloud.messages (app_id, topic, seq, message, published_at, from_subject)
        VALUES (append_messages.app_id, append_messages.topic, first_id + 1,
                append_messages.messages, published_at, append_messages.from_subject);
    ELSE
        INSERT INTO picloud.messages (app_id, topic, seq, message, published_at, from_subject)
        SELECT append_messages.app_id, append_messages.topic, first_id + e.i, e.m,
               append_messages.published_at, append_messages.from_subject
          FROM jsonb_array_elements(append_messages.messages) WITH ORDINALITY e(m, i);
    END IF;
    -- The pub/sub source of the outbox (sql/44_pubsub_source.sql), once per message. Most
    -- apps have no pubsub trigger: the test is inline, as a function call costs more than
    -- the probe. fan_out = false is the loop guard of topic handlers (sql/40_outbox.sql).
    IF append_messages.fan_out
       AND EXISTS (SELECT FROM picloud.triggers t
                    WHERE t.app_id = append_messages.app_id AND t.source = 'pubsub' AND t.enabled)
    THEN
        PERFORM picloud.fan_out_message(append_messages.app_id, append_messages.topic,
                                        first_id + e.i, e.m, append_messages.published_at)
           FROM jsonb_array_elements(CASE WHEN append_messages.single
                                          THEN jsonb_build_array(append_messages.messages)
                                          ELSE append_messages.messages END)
                WITH ORDINALITY e(m, i)
          ORDER BY e.i;
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.append_messages(uuid, text, jsonb, text, boolean, boolean) IS
    'The publish path behind picloud.publish, publish_batch, token publishes and topic handlers: validates a JSON array of 1 to max_batch_messages() messages (or, single, one message) (each at most max_message_bytes()), appends them with consecutive sequence numbers first_id + 1 .. first_id + n and one published_at, arms the commit-time wake-up (picloud.wake_on_commit: at most one notification per transaction, and none while another committing transaction carries one), and (fan_out) fans each out to pubsub triggers; all in the caller''s transaction, all or nothing. from_subject is the publishing token''s subject. 22023: not an array, empty or too many; 54000: a message too large (named by its index in a batch); P0002: no such topic.';

-- Queued once per transaction (the first row of its first append: picloud.wake_first),
-- fired at commit: sql/29_wakeups.sql.
DROP TRIGGER IF EXISTS messages_wake_relays ON picloud.messages;
CREATE CONSTRAINT TRIGGER messages_wake_relays AFTER INSERT ON picloud.messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.seq::text = current_setting('picloud.wake_first', true))
    EXECUTE FUNCTION picloud.wake_on_commit('realtime');

CREATE OR REPLACE FUNCTION picloud.publish_message(
    app_id uuid, topic text, message jsonb, OUT id bigint, OUT published_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- plpgsql, not sql: its plan is cached (an sql function returning a record is
    -- planned on every call).
    SELECT a.first_id + 1, a.published_at INTO id, published_at
      FROM picloud.append_messages(publish_message.app_id, publish_message.topic,
                                   publish_message.message, single => true) a;
END
$$;
COMMENT ON FUNCTION picloud.publish_message(uuid, text, jsonb) IS
    'picloud.publish, also returning published_at (what the HTTP API answers).';

CREATE OR REPLACE FUNCTION picloud.publish_batch(app_id uuid, topic text, messages jsonb)
RETURNS TABLE (id bigint, published_at timestamptz)
LANGUAGE sql VOLATILE AS $$
    SELECT a.first_id + g, a.published_at
      FROM picloud.append_messages(publish_batch.app_id, publish_batch.topic,
                                   publish_batch.messages) a
     CROSS JOIN LATERAL generate_series(1, jsonb_array_length(publish_batch.messages)) g
$$;
COMMENT ON FUNCTION picloud.publish_batch(uuid, text, jsonb) IS
    'Publish a JSON array of messages (1 to picloud.max_batch_messages(), each at most picloud.max_message_bytes()) in one statement, all or nothing: consecutive sequence numbers, one published_at, one notification, one pubsub fan-out per message. Returns each message''s sequence number and the time. 22023: not an array, empty or too many; 54000: a message too large (named by its index); P0002: no such topic.';

CREATE OR REPLACE FUNCTION picloud.publish_with_token(
    app_id uuid, topic text, token text, message jsonb)
RETURNS TABLE (verdict text, id bigint, published_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_grant record;
BEGIN
    PERFORM 1 FROM picloud.topics t
      WHERE t.app_id = publish_with_token.app_id AND t.name = publish_with_token.topic
        AND t.external_subscribable;
    IF NOT FOUND THEN
        verdict := 'not_found';  -- missing and internal topics look the same
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT * INTO v_grant FROM picloud.verified_token_claims(
        publish_with_token.app_id, publish_with_token.topic, publish_with_token.token);
    IF NOT FOUND OR NOT v_grant.can_publish THEN
        verdict := 'unauthorized';
        RETURN NEXT;
        RETURN;
    END IF;
    verdict := 'published';
    SELECT a.first_id + 1, a.published_at INTO id, published_at
      FROM picloud.append_messages(publish_with_token.app_id, publish_with_token.topic,
                                   publish_with_token.message, v_grant.subject,
                                   single => true) a;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION picloud.publish_with_token(uuid, text, text, jsonb) IS
    'Publish one message with a subscriber token that grants publish on this topic (picloud.subscriber_token(..., can_publish => true)); the token''s subject is stored as the message''s from_subject. verdict ''published'' (with id and published_at), ''not_found'' (topic missing or not external_subscribable) or ''unauthorized'' (token missing, invalid, or without the grant). Same limits as picloud.publish.';

CREATE OR REPLACE FUNCTION picloud.publish(app_id uuid, topic text, message jsonb)
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    -- sql, not plpgsql: the planner inlines it into the caller's query (one function
    -- call fewer per publish).
    SELECT (picloud.append_messages(publish.app_id, publish.topic, publish.message,
                                    single => true)).first_id + 1
$$;
COMMENT ON FUNCTION picloud.publish(uuid, text, jsonb) IS
    'Append a message to a topic''s log and notify the realtime relays, in the caller''s transaction (nothing is delivered unless it commits). Returns the per-topic sequence number. P0002: no such topic (22023 when the name is not a valid one); 54000: larger than picloud.max_message_bytes(); 22023: NULL message.';

CREATE OR REPLACE FUNCTION picloud.prune_messages(retention interval) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_deleted bigint;
BEGIN
    IF prune_messages.retention IS NULL OR prune_messages.retention < interval '0' THEN
        RAISE EXCEPTION 'retention must be zero or more' USING ERRCODE = '22023';
    END IF;
    -- published_at grows with seq in a topic, so this removes a prefix of each topic's log.
    DELETE FROM picloud.messages m WHERE m.published_at < now() - prune_messages.retention;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION picloud.prune_messages(interval) IS
    'Delete messages published longer ago than retention (the GC role runs it with PICLOUD_REALTIME_RETENTION_SEC); returns how many.';
