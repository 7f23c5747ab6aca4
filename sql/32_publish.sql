-- Transactional publish into the message log, and its retention pruning.

CREATE OR REPLACE FUNCTION picloud.max_message_bytes() RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('picloud.max_message_bytes', true), '')::integer, 65536)
$$;
COMMENT ON FUNCTION picloud.max_message_bytes() IS
    'Largest message picloud.publish accepts, in bytes of its JSON text: the session setting picloud.max_message_bytes (the server sets it from PICLOUD_MAX_MESSAGE_BYTES), else 65536.';

DROP FUNCTION IF EXISTS picloud.publish_message(uuid, text, jsonb);
CREATE OR REPLACE FUNCTION picloud.publish_message(
    app_id uuid, topic text, message jsonb, OUT id bigint, OUT published_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_size  integer;
    v_limit integer := picloud.max_message_bytes();
BEGIN
    IF publish_message.message IS NULL THEN
        RAISE EXCEPTION 'message must not be NULL (JSON null is ''null''::jsonb)'
            USING ERRCODE = '22023';
    END IF;
    v_size := octet_length(publish_message.message::text);
    IF v_size > v_limit THEN
        RAISE EXCEPTION 'message is % bytes, more than the limit of % bytes', v_size, v_limit
            USING ERRCODE = '54000';
    END IF;
    -- The counter row lock serialises publishers of one topic until they commit, so
    -- sequence numbers are handed out, and become visible, in commit order without gaps.
    -- It also keeps the topic from being deleted under this publish (no orphan rows).
    UPDATE picloud.topics t SET last_seq = t.last_seq + 1
     WHERE t.app_id = publish_message.app_id AND t.name = publish_message.topic
    RETURNING t.last_seq INTO id;
    IF NOT FOUND THEN
        PERFORM picloud.check_topic_name(publish_message.topic);  -- (only when not found)
        RAISE EXCEPTION 'no such topic' USING ERRCODE = 'P0002';
    END IF;
    -- Taken under the lock, so published_at also grows with seq within a topic.
    published_at := clock_timestamp();
    INSERT INTO picloud.messages (app_id, topic, seq, message, published_at)
    VALUES (publish_message.app_id, publish_message.topic, id, publish_message.message,
            published_at);
    PERFORM pg_notify(picloud.realtime_channel(),
                      publish_message.app_id || ' ' || id || ' ' || publish_message.topic);
    -- The pub/sub source of the outbox (sql/44_pubsub_source.sql). Most apps have no
    -- pubsub trigger: the test is inline, as a function call costs more than the probe.
    IF EXISTS (SELECT FROM picloud.triggers t
                WHERE t.app_id = publish_message.app_id AND t.source = 'pubsub' AND t.enabled)
    THEN
        PERFORM picloud.fan_out_message(publish_message.app_id, publish_message.topic, id,
                                        publish_message.message, published_at);
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.publish_message(uuid, text, jsonb) IS
    'picloud.publish, also returning published_at (what the HTTP API answers).';

CREATE OR REPLACE FUNCTION picloud.publish(app_id uuid, topic text, message jsonb)
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    -- sql, not plpgsql: the planner inlines it into the caller's query (one function
    -- call fewer per publish).
    SELECT (picloud.publish_message(publish.app_id, publish.topic, publish.message)).id
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
