-- Group commit: many publish requests (API key or subscriber token) in one statement.

CREATE OR REPLACE FUNCTION picloud.publish_group(
    keys text[], app_ids uuid[], capabilities text[], hosts text[], tokens text[],
    topics text[], messages text[], singles boolean[])
RETURNS TABLE (i integer, error_state text, error_message text, ids bigint[],
               published_at text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_n     integer := coalesce(cardinality(publish_group.topics), 0);
    v_req   record;
    v_msgs  jsonb;
    v_at    timestamptz;
    v_state text;
    v_text  text;
BEGIN
    -- One request per array index: an API-key publish (keys[i] asking capabilities[i] on
    -- app_ids[i], checked by picloud.authorize; messages[i] is one message when
    -- singles[i], else a JSON array of them) or, where hosts[i] is set, a subscriber-token
    -- publish of one message (tokens[i] on the app of that Host).
    -- Each runs in its own subtransaction: a request refused for its input or its
    -- credentials is rolled back alone and answered by its SQLSTATE and message, and the
    -- others commit together, with one wake-up NOTIFY for the whole transaction.
    IF coalesce(cardinality(publish_group.keys), 0) <> v_n
       OR coalesce(cardinality(publish_group.app_ids), 0) <> v_n
       OR coalesce(cardinality(publish_group.capabilities), 0) <> v_n
       OR coalesce(cardinality(publish_group.hosts), 0) <> v_n
       OR coalesce(cardinality(publish_group.tokens), 0) <> v_n
       OR coalesce(cardinality(publish_group.messages), 0) <> v_n
       OR coalesce(cardinality(publish_group.singles), 0) <> v_n THEN
        RAISE EXCEPTION 'publish_group takes arrays of one length' USING ERRCODE = '22023';
    END IF;
    -- In (app, topic) order, so that groups (of this node and of others) lock the topics
    -- they share in one order and cannot deadlock; arrival order within a topic.
    FOR v_req IN
        SELECT g.i, coalesce(publish_group.app_ids[g.i],
                             picloud.resolve_app(publish_group.hosts[g.i])) AS app_id
          FROM generate_series(1, v_n) g(i)
         ORDER BY 2, publish_group.topics[g.i], g.i
    LOOP
        i := v_req.i;
        error_state := NULL;
        error_message := NULL;
        ids := NULL;
        published_at := NULL;
        v_msgs := NULL;
        BEGIN
            IF publish_group.hosts[i] IS NULL THEN
                PERFORM FROM picloud.authorize(publish_group.keys[i], v_req.app_id,
                                               publish_group.capabilities[i]);
                v_msgs := publish_group.messages[i]::jsonb;
                SELECT a.ids, a.published_at INTO ids, v_at
                  FROM picloud.append_messages(v_req.app_id, publish_group.topics[i], v_msgs,
                                               single => publish_group.singles[i]) a;
            ELSE
                v_msgs := publish_group.messages[i]::jsonb;
                SELECT p.verdict, ARRAY[p.id], p.published_at INTO v_text, ids, v_at
                  FROM picloud.publish_with_token(v_req.app_id, publish_group.topics[i],
                                                  publish_group.tokens[i], v_msgs) p;
                IF v_text = 'not_found' THEN
                    RAISE EXCEPTION 'not found' USING ERRCODE = 'P0002';
                ELSIF v_text <> 'published' THEN
                    RAISE EXCEPTION 'not authorized to publish' USING ERRCODE = '28000';
                END IF;
            END IF;
            published_at := to_jsonb(v_at) #>> '{}';  -- the JSON text of the SSE frames
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_text = MESSAGE_TEXT;
            -- A refusal of this request's input or credentials is its answer; anything
            -- else (a deadlock, a bug) fails the whole statement.
            IF left(v_state, 2) NOT IN ('22', '28', '54') AND v_state NOT IN ('42501', 'P0002')
            THEN
                RAISE;
            END IF;
            IF v_msgs IS NULL AND left(v_state, 2) = '22' AND NOT publish_group.singles[i]
               AND publish_group.hosts[i] IS NULL THEN
                -- jsonb refused a batch that json takes (a \u0000): name the message.
                v_text := coalesce('message ' || picloud.first_unstorable_message(
                                       publish_group.messages[i]) || ': ', '') || v_text;
            END IF;
            error_state := v_state;
            error_message := v_text;
            ids := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION picloud.publish_group(text[], uuid[], text[], text[], text[], text[], text[], boolean[]) IS
    'A node''s group commit: publish the requests given as parallel arrays (index i: an API-key publish of messages[i], one message when singles[i], else a JSON array, to app app_ids[i] with keys[i], authorised by picloud.authorize for capabilities[i] (topics:publish); or, where hosts[i] is set, a subscriber-token publish of one message with tokens[i] on the app of that Host) in the caller''s transaction, each authorised and validated by itself and rolled back alone when refused. One row per request: error_state NULL and its message ids (increasing, in message order), published_at as JSON text; or the refusal''s error_state (SQLSTATE) and error_message (28000 bad credentials, P0002 no such app or topic, 42501 the key lacks the capability, class 22 bad input, 54000 too large). 22023 for the whole call: arrays of different lengths.';

CREATE OR REPLACE FUNCTION picloud.first_unstorable_message(messages text)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_i integer := -1;
    v_m json;
BEGIN
    -- Only asked after jsonb refused the array: one subtransaction per message is fine.
    IF json_typeof(first_unstorable_message.messages::json) <> 'array' THEN
        RETURN NULL;
    END IF;
    FOR v_m IN SELECT e FROM json_array_elements(first_unstorable_message.messages::json) e LOOP
        v_i := v_i + 1;
        BEGIN
            PERFORM v_m::jsonb;
        EXCEPTION WHEN data_exception THEN
            RETURN v_i;
        END;
    END LOOP;
    RETURN NULL;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;  -- not even JSON
END
$$;
COMMENT ON FUNCTION picloud.first_unstorable_message(text) IS
    'The 0-based index of the first message of a JSON array (as text) that jsonb cannot hold (a \u0000 in a string or key: json keeps it, jsonb refuses it), for the wording of an error; NULL when there is none or the text is no JSON array.';
