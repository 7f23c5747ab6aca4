-- Group commit: many publish requests (API key or subscriber token) in one statement.

CREATE OR REPLACE FUNCTION picloud.refuses_request(sqlstate text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(refuses_request.sqlstate, 2) IN ('22', '28', '54')
        OR refuses_request.sqlstate IN ('42501', 'P0002')
$$;
COMMENT ON FUNCTION picloud.refuses_request(text) IS
    'Whether a SQLSTATE raised while publishing one request of a group refuses that request''s input or credentials (class 22 bad input, 28 credentials, 54 too large, 42501 capability, P0002 no such app or topic): its answer, where any other fails the whole statement.';

CREATE OR REPLACE FUNCTION picloud.publish_as_token(
    app_id uuid, topic text, token text, message jsonb,
    OUT id bigint, OUT published_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_verdict text;
BEGIN
    SELECT p.verdict, p.id, p.published_at INTO v_verdict, id, published_at
      FROM picloud.publish_with_token(publish_as_token.app_id, publish_as_token.topic,
                                      publish_as_token.token, publish_as_token.message) p;
    IF v_verdict = 'not_found' THEN
        RAISE EXCEPTION 'not found' USING ERRCODE = 'P0002';
    ELSIF v_verdict <> 'published' THEN
        RAISE EXCEPTION 'not authorized to publish' USING ERRCODE = '28000';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.publish_as_token(uuid, text, text, jsonb) IS
    'picloud.publish_with_token for the publish groups: its verdict other than published raised (P0002 no such topic, 28000 the token may not publish there), else the message''s id and time.';

CREATE OR REPLACE FUNCTION picloud.publish_group(
    keys text[], app_ids uuid[], capabilities text[], hosts text[], tokens text[],
    topics text[], messages text[], singles boolean[])
RETURNS TABLE (i integer, error_state text, error_message text, ids bigint[],
               published_at text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_n       integer := coalesce(cardinality(publish_group.topics), 0);
    v_req     record;
    v_check   record;
    v_refused text[];  -- per request: the SQLSTATE its key check refused it with
    v_why     text[];  -- and that refusal's message
    v_member  integer;
    v_at      timestamptz;
    v_state   text;
    v_text    text;
BEGIN
    -- One request per array index: an API-key publish (keys[i] asking capabilities[i] on
    -- app_ids[i], checked by picloud.authorize; messages[i] is one message when
    -- singles[i], else a JSON array of them) or, where hosts[i] is set, a subscriber-token
    -- publish of one message (tokens[i] on the app of that Host).
    -- Each runs in its own subtransaction: a request refused for its input or its
    -- credentials is rolled back alone and answered by its SQLSTATE and message, and the
    -- others commit together, with one wake-up NOTIFY for the whole transaction.
    -- (A group of one request goes through picloud.publish_one instead.)
    IF coalesce(cardinality(publish_group.keys), 0) <> v_n
       OR coalesce(cardinality(publish_group.app_ids), 0) <> v_n
       OR coalesce(cardinality(publish_group.capabilities), 0) <> v_n
       OR coalesce(cardinality(publish_group.hosts), 0) <> v_n
       OR coalesce(cardinality(publish_group.tokens), 0) <> v_n
       OR coalesce(cardinality(publish_group.messages), 0) <> v_n
       OR coalesce(cardinality(publish_group.singles), 0) <> v_n THEN
        RAISE EXCEPTION 'publish_group takes arrays of one length' USING ERRCODE = '22023';
    END IF;
    -- The key check once per distinct (key, app, capability) of the API-key requests (a
    -- group is mostly one key's): a refusal answers every request that asked it.
    v_refused := array_fill(NULL::text, ARRAY[v_n]);
    v_why := v_refused;
    FOR v_check IN
        SELECT publish_group.keys[g.i] AS key, publish_group.app_ids[g.i] AS app_id,
               publish_group.capabilities[g.i] AS capability, array_agg(g.i) AS members
          FROM generate_series(1, v_n) g(i)
         WHERE publish_group.hosts[g.i] IS NULL
         GROUP BY 1, 2, 3
    LOOP
        BEGIN
            PERFORM FROM picloud.authorize(v_check.key, v_check.app_id, v_check.capability);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_text = MESSAGE_TEXT;
            IF NOT picloud.refuses_request(v_state) THEN
                RAISE;
            END IF;
            FOREACH v_member IN ARRAY v_check.members LOOP
                v_refused[v_member] := v_state;
                v_why[v_member] := v_text;
            END LOOP;
        END;
    END LOOP;
    -- In (app, topic) order, so that groups (of this node and of others) lock the topics
    -- they share in one order and cannot deadlock; arrival order within a topic.
    FOR v_req IN
        SELECT g.i, coalesce(publish_group.app_ids[g.i],
                             picloud.resolve_app(publish_group.hosts[g.i])) AS app_id
          FROM generate_series(1, v_n) g(i)
         ORDER BY 2, publish_group.topics[g.i], g.i
    LOOP
        i := v_req.i;
        error_state := v_refused[i];
        error_message := v_why[i];
        ids := NULL;
        published_at := NULL;
        IF error_state IS NOT NULL THEN  -- its key was refused
            RETURN NEXT;
            CONTINUE;
        END IF;
        BEGIN
            IF publish_group.hosts[i] IS NULL THEN
                SELECT a.ids, a.published_at INTO ids, v_at
                  FROM picloud.append_messages(
                           v_req.app_id, publish_group.topics[i],
                           CASE WHEN publish_group.singles[i]
                                THEN publish_group.messages[i]::jsonb
                                ELSE picloud.batch_jsonb(publish_group.messages[i]) END,
                           single => publish_group.singles[i]) a;
            ELSE
                SELECT ARRAY[p.id], p.published_at INTO ids, v_at
                  FROM picloud.publish_as_token(v_req.app_id, publish_group.topics[i],
                                                publish_group.tokens[i],
                                                publish_group.messages[i]::jsonb) p;
            END IF;
            published_at := to_jsonb(v_at) #>> '{}';  -- the JSON text of the SSE frames
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_text = MESSAGE_TEXT;
            -- A refusal of this request's input or credentials is its answer; anything
            -- else (a deadlock, a bug) fails the whole statement.
            IF NOT picloud.refuses_request(v_state) THEN
                RAISE;
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
    'A node''s group commit: publish the requests given as parallel arrays (index i: an API-key publish of messages[i], one message when singles[i], else a JSON array, to app app_ids[i] with keys[i], authorised by picloud.authorize for capabilities[i] (topics:publish), checked once per distinct (key, app, capability) of the group; or, where hosts[i] is set, a subscriber-token publish of one message with tokens[i] on the app of that Host) in the caller''s transaction, each validated by itself and rolled back alone when refused. One row per request: error_state NULL and its message ids (increasing, in message order), published_at as JSON text; or the refusal''s error_state (SQLSTATE) and error_message (28000 bad credentials, P0002 no such app or topic, 42501 the key lacks the capability, class 22 bad input, 54000 too large). 22023 for the whole call: arrays of different lengths. A group of one request is cheaper through picloud.publish_one (same answers, as errors).';

CREATE OR REPLACE FUNCTION picloud.publish_one(
    key text, app_id uuid, capability text, host text, token text, topic text,
    messages text, single boolean, OUT ids bigint[], OUT published_at text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_at timestamptz;
BEGIN
    -- The request of a group of one (picloud.publish_group's index i as scalars), in the
    -- caller's statement: no subtransaction and no arrays to unpack. A refusal is raised
    -- (the statement holds nothing else to keep), with the SQLSTATE and message
    -- publish_group answers it with, checked in the same order.
    IF publish_one.host IS NULL THEN
        PERFORM FROM picloud.authorize(publish_one.key, publish_one.app_id,
                                       publish_one.capability);
        SELECT a.ids, a.published_at INTO ids, v_at
          FROM picloud.append_messages(
                   publish_one.app_id, publish_one.topic,
                   CASE WHEN publish_one.single THEN publish_one.messages::jsonb
                        ELSE picloud.batch_jsonb(publish_one.messages) END,
                   single => publish_one.single) a;
    ELSE
        SELECT ARRAY[p.id], p.published_at INTO ids, v_at
          FROM picloud.publish_as_token(
                   coalesce(publish_one.app_id, picloud.resolve_app(publish_one.host)),
                   publish_one.topic, publish_one.token, publish_one.messages::jsonb) p;
    END IF;
    published_at := to_jsonb(v_at) #>> '{}';  -- the JSON text of the SSE frames
END
$$;
COMMENT ON FUNCTION picloud.publish_one(text, uuid, text, text, text, text, text, boolean) IS
    'One publish request, as picloud.publish_group takes it (an API-key publish of messages, one message when single, else a JSON array, to app_id with key, authorised by picloud.authorize for capability; or, where host is set, a subscriber-token publish of one message with token on the app of that Host), in the caller''s transaction without a subtransaction: its message ids (increasing, in message order) and published_at as JSON text. A refusal is raised with the SQLSTATE and message publish_group answers it with: 28000 bad credentials, P0002 no such app or topic, 42501 the key lacks the capability, class 22 bad input (a batch message jsonb cannot hold is named by its index), 54000 too large.';

CREATE OR REPLACE FUNCTION picloud.batch_jsonb(messages text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_state text;
    v_text  text;
BEGIN
    RETURN batch_jsonb.messages::jsonb;
EXCEPTION WHEN data_exception THEN
    -- jsonb refused a batch that json takes (a \u0000): name the message.
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_text = MESSAGE_TEXT;
    RAISE EXCEPTION USING ERRCODE = v_state,
        MESSAGE = coalesce('message ' || picloud.first_unstorable_message(batch_jsonb.messages)
                           || ': ', '') || v_text;
END
$$;
COMMENT ON FUNCTION picloud.batch_jsonb(text) IS
    'The JSON text of a batch of messages as jsonb; a class 22 refusal keeps its SQLSTATE and names the first message jsonb cannot hold (picloud.first_unstorable_message), as in "message 1: ...".';

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
