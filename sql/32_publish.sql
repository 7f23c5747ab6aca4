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
    OUT first_id bigint, OUT published_at timestamptz, OUT ids bigint[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count     integer;
    v_limit     integer := picloud.max_message_bytes();
    v_index     integer;  -- of the first message of a batch over the limit
    v_size      integer;
    v_key       integer := picloud.topic_lock_key(append_messages.app_id, append_messages.topic);
    v_positions regclass;
BEGIN
    -- The one publish path: publish, publish_batch, token publishes and topic handlers.
    -- single: `messages` is one message, not an array of them. (Not a set-returning
    -- function, and a single message is not wrapped in an array: both cost a measurable
    -- part of a single publish.) ids: the positions, in message order; first_id is the
    -- one before the first (ids[1] - 1).
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
    -- No lock that another publisher of this topic waits for (sql/32_positions.sql): a
    -- shared guard against the topic's deletion, then, before drawing, the mark readers
    -- test to know this transaction may still commit positions of the topic (keyed by
    -- its transaction id, assigned here if it has none yet).
    PERFORM pg_advisory_xact_lock_shared(picloud.topic_guard_class(), v_key),
            pg_advisory_xact_lock_shared(
                picloud.position_lock_class(),
                v_key # picloud.xid_lock_bits(pg_current_xact_id()::text::bigint));
    SELECT t.positions INTO v_positions
      FROM picloud.topics t
     WHERE t.app_id = append_messages.app_id AND t.name = append_messages.topic;
    IF NOT FOUND THEN
        PERFORM picloud.check_topic_name(append_messages.topic);  -- (only when not found)
        RAISE EXCEPTION 'no such topic' USING ERRCODE = 'P0002';
    END IF;
    -- Positions grow in the order they are drawn; a concurrent publisher of the topic may
    -- draw between the messages of a batch, so its ids increase but need not be
    -- consecutive.
    IF append_messages.single THEN
        ids := ARRAY[nextval(v_positions)];
    ELSE
        SELECT array_agg(nextval(v_positions) ORDER BY g) INTO ids
          FROM generate_series(1, v_count) g;
    END IF;
    first_id := ids[1] - 1;
    published_at := clock_timestamp();
    -- The wake-up is decided at commit (picloud.wake_on_commit, a deferred trigger), so one
    -- transaction arms it once however many appends it makes; it names the last of them.
    -- Armed before the INSERT: the trigger's WHEN reads wake_first.
    IF coalesce(current_setting('picloud.wake_payload_realtime', true), '') = '' THEN
        PERFORM set_config('picloud.wake_first', ids[1]::text, true);
    END IF;
    PERFORM set_config('picloud.wake_payload_realtime',
                       append_messages.app_id || ' ' || ids[v_count] || ' '
                       || append_messages.topic, true);
    IF append_messages.single THEN
        INSERT INTO picloud.messages (app_id, topic, seq, message, published_at, from_subject)
        VALUES (append_messages.app_id, append_messages.topic, ids[1],
                append_messages.messages, published_at, append_messages.from_subject);
    ELSE
        INSERT INTO picloud.messages (app_id, topic, seq, message, published_at, from_subject)
        SELECT append_messages.app_id, append_messages.topic, ids[e.i], e.m,
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
                                        ids[e.i], e.m, append_messages.published_at)
           FROM jsonb_array_elements(CASE WHEN append_messages.single
                                          THEN jsonb_build_array(append_messages.messages)
                                          ELSE append_messages.messages END)
                WITH ORDINALITY e(m, i)
          ORDER BY e.i;
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.append_messages(uuid, text, jsonb, text, boolean, boolean) IS
    'The publish path behind picloud.publish, publish_batch, token publishes and topic handlers: validates a JSON array of 1 to max_batch_messages() messages (or, single, one message) (each at most max_message_bytes()), appends them at positions drawn from the topic''s sequence (ids, increasing in message order; a concurrent publisher of the topic may draw between them; first_id = ids[1] - 1) with one published_at, without waiting for any other publisher''s commit; arms the commit-time wake-up (picloud.wake_on_commit: at most one notification per transaction, and none while another committing transaction carries one), and (fan_out) fans each out to pubsub triggers; all in the caller''s transaction, all or nothing. from_subject is the publishing token''s subject. 22023: not an array, empty or too many; 54000: a message too large (named by its index in a batch); P0002: no such topic.';

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
    SELECT u.id, a.published_at
      FROM picloud.append_messages(publish_batch.app_id, publish_batch.topic,
                                   publish_batch.messages) a
     CROSS JOIN LATERAL unnest(a.ids) WITH ORDINALITY u(id, n)
     ORDER BY u.n
$$;
COMMENT ON FUNCTION picloud.publish_batch(uuid, text, jsonb) IS
    'Publish a JSON array of messages (1 to picloud.max_batch_messages(), each at most picloud.max_message_bytes()) in one statement, all or nothing: increasing positions in message order (consecutive unless a concurrent publisher of the topic drew between them), one published_at, one notification, one pubsub fan-out per message. Returns each message''s sequence number and the time. 22023: not an array, empty or too many; 54000: a message too large (named by its index); P0002: no such topic.';

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
    -- A prefix of each topic's log: everything up to its last position published before
    -- the cut (published_at follows the order positions are drawn in only roughly, as
    -- publishers no longer take turns), so no hole opens inside what is kept.
    DELETE FROM picloud.messages m
     USING (SELECT x.app_id, x.topic, max(x.seq) AS upto
              FROM picloud.messages x
             WHERE x.published_at < now() - prune_messages.retention
             GROUP BY x.app_id, x.topic) p
     WHERE m.app_id = p.app_id AND m.topic = p.topic AND m.seq <= p.upto;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION picloud.prune_messages(interval) IS
    'Delete messages published longer ago than retention (the GC role runs it with PICLOUD_REALTIME_RETENTION_SEC); returns how many.';
