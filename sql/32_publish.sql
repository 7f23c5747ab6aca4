-- Transactional publish into the message log, and its retention pruning.

CREATE OR REPLACE FUNCTION picloud.max_message_bytes() RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('picloud.max_message_bytes', true), '')::integer, 65536)
$$;
COMMENT ON FUNCTION picloud.max_message_bytes() IS
    'Largest message picloud.publish accepts, in bytes of its JSON text: the session setting picloud.max_message_bytes (the server sets it from PICLOUD_MAX_MESSAGE_BYTES), else 65536.';

DROP FUNCTION IF EXISTS picloud.publish_message(uuid, text, jsonb);
CREATE OR REPLACE FUNCTION picloud.publish_message(app_id uuid, topic text, message jsonb)
RETURNS TABLE (id bigint, published_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_size  integer;
    v_limit integer := picloud.max_message_bytes();
    v_seq   bigint;
    v_at    timestamptz;
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
    UPDATE picloud.topics t SET last_seq = t.last_seq + 1
     WHERE t.app_id = publish_message.app_id AND t.name = publish_message.topic
    RETURNING t.last_seq INTO v_seq;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such topic' USING ERRCODE = 'P0002';
    END IF;
    -- Taken under the lock, so published_at also grows with seq within a topic.
    v_at := clock_timestamp();
    INSERT INTO picloud.messages (app_id, topic, seq, message, published_at)
    VALUES (publish_message.app_id, publish_message.topic, v_seq, publish_message.message, v_at);
    PERFORM pg_notify(picloud.realtime_channel(),
                      publish_message.app_id || ' ' || v_seq || ' ' || publish_message.topic);
    id := v_seq;
    published_at := v_at;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION picloud.publish_message(uuid, text, jsonb) IS
    'picloud.publish, also returning published_at (what the HTTP API answers).';

CREATE OR REPLACE FUNCTION picloud.publish(app_id uuid, topic text, message jsonb)
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT p.id FROM picloud.publish_message(publish.app_id, publish.topic, publish.message) p
$$;
COMMENT ON FUNCTION picloud.publish(uuid, text, jsonb) IS
    'Append a message to a topic''s log and notify the realtime relays, in the caller''s transaction (nothing is delivered unless it commits). Returns the per-topic sequence number. P0002: no such topic; 54000: larger than picloud.max_message_bytes(); 22023: NULL message.';

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
