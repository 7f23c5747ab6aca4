-- Subscriber tokens: HMAC-SHA256 over the app's signing key, signed and checked in SQL.
--
-- Token: base64url(payload) '.' base64url(mac), payload = '<key version>.<expiry unix
-- seconds>.<app id>.<topic>' (UTF-8), mac = HMAC-SHA256(key, 'picloud-subscriber.' || payload).

CREATE OR REPLACE FUNCTION picloud.base64url_encode(data bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT translate(encode(base64url_encode.data, 'base64'), E'+/=\n', '-_')
$$;
COMMENT ON FUNCTION picloud.base64url_encode(bytea) IS 'RFC 4648 base64url without padding.';

CREATE OR REPLACE FUNCTION picloud.base64url_decode(data text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT decode(rpad(translate(base64url_decode.data, '-_', '+/'),
                       (length(base64url_decode.data) + 3) / 4 * 4, '='), 'base64')
$$;
COMMENT ON FUNCTION picloud.base64url_decode(text) IS
    'Inverse of picloud.base64url_encode; raises 22023 on characters outside the alphabet.';

CREATE OR REPLACE FUNCTION picloud.app_signing_key(app_id uuid)
RETURNS TABLE (signing_key bytea, key_version integer)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT s.signing_key, s.key_version FROM picloud.app_secrets s
                  WHERE s.app_id = app_signing_key.app_id;
    IF FOUND THEN
        RETURN;
    END IF;
    -- First mint for this app: create the key. Concurrent first mints both try; the loser's
    -- insert does nothing and the next statement sees the winner's committed row.
    INSERT INTO picloud.app_secrets (app_id, signing_key)
    VALUES (app_signing_key.app_id, picloud.random_bytes_32())
    ON CONFLICT DO NOTHING;
    RETURN QUERY SELECT s.signing_key, s.key_version FROM picloud.app_secrets s
                  WHERE s.app_id = app_signing_key.app_id;
END
$$;
COMMENT ON FUNCTION picloud.app_signing_key(uuid) IS
    'The app''s current token signing key and its version, created on first use (race-free).';

-- picloud.token_subject_valid(subject), the rule itself, is defined by migration V0017 (a
-- CHECK of picloud.presence_connections depends on it).

CREATE OR REPLACE FUNCTION picloud.check_token_subject(subject text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF check_token_subject.subject IS NOT NULL
       AND NOT picloud.token_subject_valid(check_token_subject.subject) THEN
        RAISE EXCEPTION 'subject must be 1-128 characters without control characters'
            USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_token_subject(text) IS
    '22023 unless a token''s subject is NULL (none) or picloud.token_subject_valid(subject).';

CREATE OR REPLACE FUNCTION picloud.sign_subscriber_token(
    app_id uuid, topics text[], ttl interval, can_publish boolean, subject text,
    info jsonb DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_key     bytea;
    v_version integer;
    v_payload bytea;
    v_token   text;
BEGIN
    IF sign_subscriber_token.ttl IS NULL OR sign_subscriber_token.ttl <= interval '0'
       OR sign_subscriber_token.ttl > interval '30 days' THEN
        RAISE EXCEPTION 'ttl must be more than 0 and at most 30 days' USING ERRCODE = '22023';
    END IF;
    PERFORM picloud.check_token_subject(sign_subscriber_token.subject);
    IF sign_subscriber_token.info IS NOT NULL
       AND (sign_subscriber_token.subject IS NULL
            OR jsonb_typeof(sign_subscriber_token.info) <> 'object'
            OR octet_length(sign_subscriber_token.info::text) > 1024) THEN
        RAISE EXCEPTION 'info must be a JSON object of at most 1024 bytes, with a subject'
            USING ERRCODE = '22023';
    END IF;
    IF coalesce(cardinality(sign_subscriber_token.topics), 0) = 0
       OR array_position(sign_subscriber_token.topics, NULL) IS NOT NULL
       OR (SELECT count(DISTINCT u) FROM unnest(sign_subscriber_token.topics) u)
          <> cardinality(sign_subscriber_token.topics) THEN
        RAISE EXCEPTION 'topics must be a non-empty list of distinct topic names'
            USING ERRCODE = '22023';
    END IF;
    IF (SELECT count(*) FROM picloud.topics t
         WHERE t.app_id = sign_subscriber_token.app_id
           AND t.name = ANY (sign_subscriber_token.topics))
       <> cardinality(sign_subscriber_token.topics) THEN
        RAISE EXCEPTION 'no such topic' USING ERRCODE = 'P0002';
    END IF;
    SELECT k.signing_key, k.key_version INTO v_key, v_version
      FROM picloud.app_signing_key(sign_subscriber_token.app_id) k;
    -- A plain subscribe token for one topic keeps the original payload; several topics are
    -- joined by ',' (which no topic name contains); grants and subject follow after a space,
    -- and the info object (JSON text, which holds no raw control character) after U+001E
    -- (which a subject never contains).
    v_payload := convert_to(
        v_version || '.' || floor(extract(epoch FROM now() + sign_subscriber_token.ttl))::bigint
        || '.' || sign_subscriber_token.app_id || '.'
        || array_to_string(sign_subscriber_token.topics, ',')
        || CASE WHEN coalesce(sign_subscriber_token.can_publish, false)
                     OR sign_subscriber_token.subject IS NOT NULL
                THEN ' ' || CASE WHEN sign_subscriber_token.can_publish THEN 'p' ELSE '-' END
                     || coalesce(' ' || sign_subscriber_token.subject, '')
                     || coalesce(chr(30) || sign_subscriber_token.info::text, '')
                ELSE '' END, 'UTF8');
    v_token := picloud.base64url_encode(v_payload) || '.' || picloud.base64url_encode(
        picloud.hmac_sha256(v_key, convert_to('picloud-subscriber.', 'UTF8') || v_payload));
    IF length(v_token) > 4096 THEN
        RAISE EXCEPTION 'too many or too long topic names for one token (at most 4096 characters)'
            USING ERRCODE = '22023';
    END IF;
    RETURN v_token;
END
$$;
COMMENT ON FUNCTION picloud.sign_subscriber_token(uuid, text[], interval, boolean, text, jsonb) IS
    'Sign a subscriber token for these topics of one app (the shared body of the picloud.subscriber_token forms); info (a JSON object of at most 1024 bytes, only with a subject) rides in it for presence. P0002 when a topic does not exist; 22023 for a bad ttl, subject, info or topic list, or a token longer than 4096 characters.';

CREATE OR REPLACE FUNCTION picloud.subscriber_token(
    app_id uuid, topic text, ttl interval DEFAULT '1 hour', can_publish boolean DEFAULT false,
    subject text DEFAULT NULL)
RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT picloud.sign_subscriber_token(subscriber_token.app_id, ARRAY[subscriber_token.topic],
                                         subscriber_token.ttl, subscriber_token.can_publish,
                                         subscriber_token.subject)
$$;
COMMENT ON FUNCTION picloud.subscriber_token(uuid, text, interval, boolean, text) IS
    'Mint a subscriber token for one topic of one app, valid for ttl (at most 30 days), signed with the app''s current key (created on first use); can_publish also lets it publish to that topic (POST /realtime/topics/{topic}/messages), and subject (1-128 characters, picloud.token_subject_valid) rides in the frames it publishes as "from". P0002 when the topic does not exist, 22023 for a bad ttl or subject.';

CREATE OR REPLACE FUNCTION picloud.subscriber_token(
    app_id uuid, topics text[], ttl interval, subject text DEFAULT NULL, info jsonb DEFAULT NULL)
RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT picloud.sign_subscriber_token(subscriber_token.app_id, subscriber_token.topics,
                                         subscriber_token.ttl, false, subscriber_token.subject,
                                         subscriber_token.info)
$$;
COMMENT ON FUNCTION picloud.subscriber_token(uuid, text[], interval, text, jsonb) IS
    'Mint a subscriber token for several topics of one app (one multiplexed stream, GET /realtime?topic=...), valid for ttl (at most 30 days); it may subscribe to each of them and publish to none; subject (1-128 characters, picloud.token_subject_valid) names the app''s user, and info (a JSON object of at most 1024 bytes, only with a subject) is what presence shows of them. P0002 when a topic does not exist; 22023 for a bad ttl, subject, info or topic list (empty, NULL or repeated names), or when the token would exceed 4096 characters.';

CREATE OR REPLACE FUNCTION picloud.subscriber_token_claims(token text)
RETURNS TABLE (key_version integer, expires_at timestamptz, app_id uuid, topic text,
               topics text[], can_publish boolean, subject text, info jsonb)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v_fields text[];
BEGIN
    -- What a token says, WITHOUT checking its signature (for display and diagnosis).
    -- Payload: '<version>.<expiry>.<app>.<topic>[,<topic>...]'
    --          [' ' ('p' | '-') [' ' <subject> [U+001E <info JSON object>]]].
    IF subscriber_token_claims.token IS NULL
       OR length(subscriber_token_claims.token) > 4096
       OR subscriber_token_claims.token !~ '^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{43}$' THEN
        RETURN;
    END IF;
    v_fields := regexp_match(
        convert_from(picloud.base64url_decode(split_part(subscriber_token_claims.token, '.', 1)),
                     'UTF8'),
        '^([0-9]{1,9})\.([0-9]{1,12})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_.:-]{1,128}(?:,[A-Za-z0-9_.:-]{1,128})*)(?: ([p-])(?: ([^[:cntrl:]]+)(?:\x1e(\{[^\x1e]*\}))?)?)?$');
    IF v_fields IS NULL
       OR (v_fields[6] IS NOT NULL AND NOT picloud.token_subject_valid(v_fields[6])) THEN
        RETURN;
    END IF;
    key_version := v_fields[1]::integer;
    expires_at := to_timestamp(v_fields[2]::bigint);
    app_id := v_fields[3]::uuid;
    topics := string_to_array(v_fields[4], ',');
    topic := CASE WHEN cardinality(topics) = 1 THEN topics[1] END;
    can_publish := coalesce(v_fields[5] = 'p', false);
    subject := v_fields[6];
    info := v_fields[7]::jsonb;
    RETURN NEXT;
EXCEPTION WHEN data_exception THEN
    RETURN;  -- not base64url, not UTF-8: not a token
END
$$;
COMMENT ON FUNCTION picloud.subscriber_token_claims(text) IS
    'The claims of a subscriber token (key version, expiry, app, its topics (topic: the one topic of a single-topic token, else NULL), publish grant, subject, info) WITHOUT verifying it; no row when it is malformed.';

CREATE OR REPLACE FUNCTION picloud.verified_token_claims(app_id uuid, topic text, token text)
RETURNS TABLE (can_publish boolean, subject text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_claims  record;
    v_secret  record;
    v_key     bytea;
    v_payload bytea;
BEGIN
    SELECT * INTO v_claims FROM picloud.subscriber_token_claims(verified_token_claims.token);
    IF NOT FOUND
       OR v_claims.app_id <> verified_token_claims.app_id
       OR NOT (verified_token_claims.topic = ANY (v_claims.topics))
       OR v_claims.expires_at <= now() THEN
        RETURN;
    END IF;
    SELECT s.signing_key, s.key_version, s.previous_key, s.previous_valid_until INTO v_secret
      FROM picloud.app_secrets s WHERE s.app_id = verified_token_claims.app_id;
    IF NOT FOUND THEN
        RETURN;
    ELSIF v_claims.key_version = v_secret.key_version THEN
        v_key := v_secret.signing_key;
    ELSIF v_claims.key_version = v_secret.key_version - 1
          AND v_secret.previous_valid_until > now() THEN
        v_key := v_secret.previous_key;
    ELSE
        RETURN;
    END IF;
    v_payload := picloud.base64url_decode(split_part(verified_token_claims.token, '.', 1));
    IF picloud.digests_equal(
        picloud.base64url_decode(split_part(verified_token_claims.token, '.', 2)),
        picloud.hmac_sha256(v_key, convert_to('picloud-subscriber.', 'UTF8') || v_payload)) THEN
        can_publish := v_claims.can_publish;
        subject := v_claims.subject;
        RETURN NEXT;
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.verified_token_claims(uuid, text, text) IS
    'The grants of a valid token (publish grant, subject): one row when it is well formed, for this app and one of its topics, unexpired, and signed by the app''s current key (or the previous one within its grace); none otherwise. Timing-safe MAC comparison.';

CREATE OR REPLACE FUNCTION picloud.verify_subscriber_token(app_id uuid, topic text, token text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT FROM picloud.verified_token_claims(
        verify_subscriber_token.app_id, verify_subscriber_token.topic,
        verify_subscriber_token.token))
$$;
COMMENT ON FUNCTION picloud.verify_subscriber_token(uuid, text, text) IS
    'True when the token is well formed, for this app and topic, unexpired, and signed by the app''s current key (or the previous one within its grace) (picloud.verified_token_claims).';

CREATE OR REPLACE FUNCTION picloud.authorize_subscribe(app_id uuid, topic text, token text)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_topic record;
BEGIN
    SELECT t.external_subscribable, t.auth_mode INTO v_topic FROM picloud.topics t
     WHERE t.app_id = authorize_subscribe.app_id AND t.name = authorize_subscribe.topic;
    IF NOT FOUND OR NOT v_topic.external_subscribable THEN
        RETURN 'not_found';  -- missing and internal topics look the same
    END IF;
    IF v_topic.auth_mode = 'public' THEN
        RETURN 'allow';
    END IF;
    IF picloud.verify_subscriber_token(authorize_subscribe.app_id, authorize_subscribe.topic,
                                       authorize_subscribe.token) THEN
        RETURN 'allow';
    END IF;
    RETURN 'unauthorized';
END
$$;
COMMENT ON FUNCTION picloud.authorize_subscribe(uuid, text, text) IS
    'May this token subscribe to this topic? ''allow'', ''not_found'' (missing or not external_subscribable: indistinguishable) or ''unauthorized'' (token-mode topic, token missing or invalid for any reason, never said which).';

CREATE OR REPLACE FUNCTION picloud.rotate_app_secret(app_id uuid, grace interval DEFAULT '1 hour')
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_version integer;
BEGIN
    IF rotate_app_secret.grace IS NULL OR rotate_app_secret.grace < interval '0' THEN
        RAISE EXCEPTION 'grace must be zero or more' USING ERRCODE = '22023';
    END IF;
    PERFORM 1 FROM picloud.apps a WHERE a.id = rotate_app_secret.app_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such app' USING ERRCODE = 'P0002';
    END IF;
    PERFORM picloud.app_signing_key(rotate_app_secret.app_id);
    UPDATE picloud.app_secrets s
       SET previous_key = s.signing_key,
           previous_valid_until = now() + rotate_app_secret.grace,
           signing_key = picloud.random_bytes_32(),
           key_version = s.key_version + 1,
           rotated_at = now()
     WHERE s.app_id = rotate_app_secret.app_id
    RETURNING s.key_version INTO v_version;
    RETURN v_version;
END
$$;
COMMENT ON FUNCTION picloud.rotate_app_secret(uuid, interval) IS
    'Replace the app''s token signing key; tokens signed by the previous key stay valid for grace. Returns the new key version.';

CREATE OR REPLACE FUNCTION picloud.mint_topic_token(
    key_id uuid, app_id uuid, topic text, ttl_seconds double precision, can_publish boolean,
    subject text)
RETURNS TABLE (token text, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
-- POST …/topics/{name}/tokens after picloud.authorize(…, 'tokens:mint'): a token that may
-- publish also needs topics:publish, which the minting key must hold itself.
DECLARE
    v_token text;
BEGIN
    PERFORM picloud.check_topic_name(mint_topic_token.topic);
    IF coalesce(mint_topic_token.can_publish, false)
       AND NOT picloud.key_allows(mint_topic_token.key_id, mint_topic_token.app_id,
                                  'topics:publish') THEN
        RAISE EXCEPTION 'a token that may publish needs tokens:mint and topics:publish'
            USING ERRCODE = '42501';
    END IF;
    v_token := picloud.subscriber_token(
        mint_topic_token.app_id, mint_topic_token.topic,
        make_interval(secs => coalesce(mint_topic_token.ttl_seconds, 3600)),
        coalesce(mint_topic_token.can_publish, false), mint_topic_token.subject);
    RETURN QUERY SELECT v_token, c.expires_at FROM picloud.subscriber_token_claims(v_token) c;
END
$$;
COMMENT ON FUNCTION picloud.mint_topic_token(uuid, uuid, text, double precision, boolean, text) IS
    'Mint a subscriber token for one topic on behalf of an API key (ttl_seconds NULL: one hour): the token and its expiry. 22023 for a malformed name or bad ttl or subject, P0002 for an unknown topic, 42501 when it may publish but the key lacks topics:publish.';

CREATE OR REPLACE FUNCTION picloud.mint_stream_token(
    app_id uuid, topics text[], ttl_seconds double precision, subject text,
    info jsonb DEFAULT NULL)
RETURNS TABLE (token text, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_topic text;
    v_token text;
BEGIN
    FOREACH v_topic IN ARRAY coalesce(mint_stream_token.topics, '{}') LOOP
        PERFORM picloud.check_topic_name(v_topic);
    END LOOP;
    v_token := picloud.subscriber_token(
        mint_stream_token.app_id, mint_stream_token.topics,
        make_interval(secs => coalesce(mint_stream_token.ttl_seconds, 3600)),
        mint_stream_token.subject, mint_stream_token.info);
    RETURN QUERY SELECT v_token, c.expires_at FROM picloud.subscriber_token_claims(v_token) c;
END
$$;
COMMENT ON FUNCTION picloud.mint_stream_token(uuid, text[], double precision, text, jsonb) IS
    'Mint a subscriber token for several topics (one multiplexed stream; ttl_seconds NULL: one hour), with an optional subject and info (what presence shows of the subject): the token and its expiry. 22023 for a malformed or repeated name, an empty list, a bad ttl, subject or info; P0002 for an unknown topic.';

CREATE OR REPLACE FUNCTION picloud.rotate_signing_key(app_id uuid, grace_seconds double precision)
RETURNS TABLE (key_version integer, rotated_at timestamptz, previous_valid_until timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
-- Beyond the longest token life (30 days) a grace means nothing, so it is refused.
DECLARE
    v_grace interval := make_interval(secs => coalesce(rotate_signing_key.grace_seconds, 3600));
BEGIN
    IF v_grace > interval '30 days' THEN
        RAISE EXCEPTION 'grace must be at most 30 days (the longest token life)'
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY SELECT picloud.rotate_app_secret(rotate_signing_key.app_id, v_grace), now(),
                        now() + v_grace;
END
$$;
COMMENT ON FUNCTION picloud.rotate_signing_key(uuid, double precision) IS
    'Rotate an app''s token signing key with a grace of grace_seconds (NULL: one hour; 0 to 30 days, else 22023) for the previous key: the new version, the rotation time and the previous key''s grace end.';
