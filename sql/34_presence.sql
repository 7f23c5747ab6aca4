-- Presence: who is connected to a topic, across every node sharing the database.
--
-- A subscriber is present on a topic with presence = true while one of its SSE
-- connections is open and its token names a subject. Each node's relay writes the
-- connections it holds (picloud.presence_join / presence_leave) and renews its lease
-- (picloud.presence_heartbeat); a node whose lease ran out no longer counts (the view
-- picloud.presence) and is removed, with its subjects' leaves, by whichever node runs
-- picloud.presence_expire first. Several connections of one subject (tabs, devices,
-- nodes) are one presence: "joined" is announced on its first live connection in the
-- cluster, "left" after its last, on the NOTIFY channel picloud.presence_channel() (JSON payload
-- {"app","topic","event","subject","info"}; at most ~1.5 KB: info is at most 1 KiB).
--
-- Join and leave decide "first" and "last" under a transaction advisory lock per
-- (app, topic, subject), taken before any row changes and in one global order (the
-- lock key's), so concurrent nodes never both announce and never deadlock.

CREATE OR REPLACE FUNCTION picloud.presence_lock_key(app_id uuid, topic text, subject text)
RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT hashtextextended(presence_lock_key.app_id::text || '/' || presence_lock_key.topic
                            || '/' || presence_lock_key.subject, 0)
$$;
COMMENT ON FUNCTION picloud.presence_lock_key(uuid, text, text) IS
    'The advisory lock key that serialises joins and leaves of one subject on one topic (collisions only serialise more).';

CREATE OR REPLACE VIEW picloud.presence AS
SELECT c.app_id, c.topic, c.subject, c.info, c.node_id AS node, c.connected_at
  FROM picloud.presence_connections c
  JOIN picloud.presence_nodes n ON n.node_id = c.node_id
 WHERE n.expires_at > now();
COMMENT ON VIEW picloud.presence IS
    'Who is here: one row per live connection with a subject on a presence topic (app_id, topic, subject, info from the token, node holding it, connected_at). Connections of a node whose lease ran out are not shown, even before picloud.presence_expire removes them.';

CREATE OR REPLACE FUNCTION picloud.presence_notify(
    app_id uuid, topic text, event text, subject text, info jsonb)
RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_notify(picloud.presence_channel(),
                     jsonb_build_object('app', presence_notify.app_id,
                                        'topic', presence_notify.topic,
                                        'event', presence_notify.event,
                                        'subject', presence_notify.subject,
                                        'info', presence_notify.info)::text)
$$;
COMMENT ON FUNCTION picloud.presence_notify(uuid, text, text, text, jsonb) IS
    'Announce that a subject joined or left a topic (delivered to every relay on commit).';

CREATE OR REPLACE FUNCTION picloud.presence_heartbeat(node_id text, lease interval)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_known boolean;
BEGIN
    IF presence_heartbeat.node_id IS NULL OR length(presence_heartbeat.node_id) NOT BETWEEN 1 AND 200
       OR presence_heartbeat.lease IS NULL OR presence_heartbeat.lease <= interval '0'
       OR presence_heartbeat.lease > interval '1 day' THEN
        RAISE EXCEPTION 'a node id of 1-200 characters and a lease of more than 0 and at most 1 day'
            USING ERRCODE = '22023';
    END IF;
    UPDATE picloud.presence_nodes n
       SET beat_at = now(), expires_at = now() + presence_heartbeat.lease
     WHERE n.node_id = presence_heartbeat.node_id AND n.expires_at > now();
    v_known := FOUND;
    IF NOT v_known THEN
        -- New, or expired while it stalled (others may have announced its subjects' leaves):
        -- it starts again empty, and its relay joins every connection it holds anew.
        PERFORM picloud.presence_leave_rows(ARRAY(
            SELECT c FROM picloud.presence_connections c
             WHERE c.node_id = presence_heartbeat.node_id));
        INSERT INTO picloud.presence_nodes AS n (node_id, expires_at)
        VALUES (presence_heartbeat.node_id, now() + presence_heartbeat.lease)
        ON CONFLICT ON CONSTRAINT presence_nodes_pkey DO UPDATE
           SET started_at = now(), beat_at = now(), expires_at = EXCLUDED.expires_at;
    END IF;
    RETURN v_known;
END
$$;
COMMENT ON FUNCTION picloud.presence_heartbeat(text, interval) IS
    'A relay renews its node''s lease (now() + lease). False when the node was unknown or its lease had run out: it is (re)registered with no connections, and its relay must join every connection again. 22023 for a bad node id or lease.';

CREATE OR REPLACE FUNCTION picloud.presence_leave_rows(rows picloud.presence_connections[])
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_left integer := 0;
    v_key  record;
BEGIN
    -- Locks first, in key order; then the rows go; then each subject that has no live
    -- connection left is announced once, with the info of one of its removed rows.
    PERFORM pg_advisory_xact_lock(k.key)
       FROM (SELECT DISTINCT picloud.presence_lock_key(r.app_id, r.topic, r.subject) AS key
               FROM unnest(presence_leave_rows.rows) r) k
      ORDER BY k.key;
    DELETE FROM picloud.presence_connections c
     USING unnest(presence_leave_rows.rows) r
     WHERE c.node_id = r.node_id AND c.conn_id = r.conn_id;
    FOR v_key IN
        SELECT DISTINCT ON (r.app_id, r.topic, r.subject) r.app_id, r.topic, r.subject, r.info
          FROM unnest(presence_leave_rows.rows) r
         ORDER BY r.app_id, r.topic, r.subject, r.connected_at
    LOOP
        IF NOT EXISTS (SELECT FROM picloud.presence p
                        WHERE p.app_id = v_key.app_id AND p.topic = v_key.topic
                          AND p.subject = v_key.subject) THEN
            PERFORM picloud.presence_notify(v_key.app_id, v_key.topic, 'left', v_key.subject,
                                            v_key.info);
            v_left := v_left + 1;
        END IF;
    END LOOP;
    RETURN v_left;
END
$$;
COMMENT ON FUNCTION picloud.presence_leave_rows(picloud.presence_connections[]) IS
    'Remove these connection rows and announce "left" for each subject that has no live connection any more; returns how many left. The shared body of presence_leave, presence_expire and a re-registering heartbeat.';

CREATE OR REPLACE FUNCTION picloud.presence_join(
    node_id text, conn_ids bigint[], app_ids uuid[], topics text[], subjects text[],
    infos jsonb[])
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_joined integer := 0;
    v_n      integer := coalesce(cardinality(presence_join.conn_ids), 0);
    v_added  picloud.presence_connections[];
    v_key    record;
BEGIN
    IF v_n = 0 THEN
        RETURN 0;
    END IF;
    IF coalesce(cardinality(presence_join.app_ids), 0) <> v_n
       OR coalesce(cardinality(presence_join.topics), 0) <> v_n
       OR coalesce(cardinality(presence_join.subjects), 0) <> v_n
       OR coalesce(cardinality(presence_join.infos), 0) <> v_n THEN
        RAISE EXCEPTION 'conn_ids, app_ids, topics, subjects and infos must have one entry each'
            USING ERRCODE = '22023';
    END IF;
    PERFORM 1 FROM picloud.presence_nodes n
      WHERE n.node_id = presence_join.node_id AND n.expires_at > now();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node % has no live lease: call picloud.presence_heartbeat first',
            presence_join.node_id USING ERRCODE = '55000';
    END IF;
    PERFORM pg_advisory_xact_lock(k.key)
       FROM (SELECT DISTINCT picloud.presence_lock_key(u.a, u.t, u.s) AS key
               FROM unnest(presence_join.app_ids, presence_join.topics, presence_join.subjects)
                    AS u(a, t, s)) k
      WHERE k.key IS NOT NULL
      ORDER BY k.key;
    -- Only connections of presence topics are kept (a topic that lost presence or went away
    -- meanwhile is skipped); a connection already joined stays as it was.
    WITH added AS (
        INSERT INTO picloud.presence_connections AS c
               (node_id, conn_id, app_id, topic, subject, info)
        SELECT presence_join.node_id, u.id, u.a, u.t, u.s, u.i
          FROM unnest(presence_join.conn_ids, presence_join.app_ids, presence_join.topics,
                      presence_join.subjects, presence_join.infos) AS u(id, a, t, s, i)
          JOIN picloud.topics t ON t.app_id = u.a AND t.name = u.t AND t.presence
        ON CONFLICT ON CONSTRAINT presence_connections_pkey DO NOTHING
        RETURNING c.*)
    SELECT coalesce(array_agg(ROW(a.*)::picloud.presence_connections), '{}') INTO v_added
      FROM added a;
    FOR v_key IN
        SELECT DISTINCT ON (j.app_id, j.topic, j.subject) j.app_id, j.topic, j.subject, j.info
          FROM unnest(v_added) j
         ORDER BY j.app_id, j.topic, j.subject, j.conn_id
    LOOP
        -- Announced when no other live connection (on any node) held the subject already.
        IF NOT EXISTS (SELECT FROM picloud.presence_connections c
                         JOIN picloud.presence_nodes n ON n.node_id = c.node_id
                        WHERE n.expires_at > now()
                          AND c.app_id = v_key.app_id AND c.topic = v_key.topic
                          AND c.subject = v_key.subject
                          AND NOT (c.node_id = presence_join.node_id
                                   AND c.conn_id IN (SELECT j.conn_id FROM unnest(v_added) j)))
        THEN
            PERFORM picloud.presence_notify(v_key.app_id, v_key.topic, 'joined', v_key.subject,
                                            v_key.info);
            v_joined := v_joined + 1;
        END IF;
    END LOOP;
    RETURN v_joined;
END
$$;
COMMENT ON FUNCTION picloud.presence_join(text, bigint[], uuid[], text[], text[], jsonb[]) IS
    'A relay records connections it holds (its numbers conn_ids, with their app, topic, subject and token info; connections of topics without presence are skipped, ones already recorded stay) and announces "joined" for each subject that had no live connection before; returns how many joined. 22023 for arrays of different lengths; 55000 when the node has no live lease.';

CREATE OR REPLACE FUNCTION picloud.presence_leave(node_id text, conn_ids bigint[])
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    SELECT picloud.presence_leave_rows(ARRAY(
        SELECT c FROM picloud.presence_connections c
         WHERE c.node_id = presence_leave.node_id AND c.conn_id = ANY (presence_leave.conn_ids)))
$$;
COMMENT ON FUNCTION picloud.presence_leave(text, bigint[]) IS
    'A relay''s connections closed: remove them and announce "left" for each subject with no live connection any more; returns how many left (unknown connection numbers are ignored).';

CREATE OR REPLACE FUNCTION picloud.presence_expire() RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_left integer;
BEGIN
    v_left := picloud.presence_leave_rows(ARRAY(
        SELECT c FROM picloud.presence_connections c
          JOIN picloud.presence_nodes n ON n.node_id = c.node_id
         WHERE n.expires_at <= now()));
    DELETE FROM picloud.presence_nodes n WHERE n.expires_at <= now();
    RETURN v_left;
END
$$;
COMMENT ON FUNCTION picloud.presence_expire() IS
    'Remove the nodes whose lease ran out (they died without saying so) with their connections, announcing "left" for each subject with no live connection elsewhere; returns how many left. Every relay runs it with its heartbeat.';

CREATE OR REPLACE FUNCTION picloud.presence_depart(node_id text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_left integer;
BEGIN
    v_left := picloud.presence_leave_rows(ARRAY(
        SELECT c FROM picloud.presence_connections c WHERE c.node_id = presence_depart.node_id));
    DELETE FROM picloud.presence_nodes n WHERE n.node_id = presence_depart.node_id;
    RETURN v_left;
END
$$;
COMMENT ON FUNCTION picloud.presence_depart(text) IS
    'A node stops: its connections go (announcing "left" for each subject with no live connection elsewhere) and so does its lease; returns how many left.';

CREATE OR REPLACE FUNCTION picloud.presence_sync(
    node_id text, lease interval, leave_ids bigint[], conn_ids bigint[], app_ids uuid[],
    topics text[], subjects text[], infos jsonb[])
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_known boolean;
BEGIN
    -- Every subject this call leaves or joins is locked in one pass, in key order, before
    -- any of it: locking the leaves' and then the joins' (each pass in order) could make
    -- two nodes wait for each other.
    PERFORM pg_advisory_xact_lock(k.key)
       FROM (SELECT picloud.presence_lock_key(c.app_id, c.topic, c.subject) AS key
               FROM picloud.presence_connections c
              WHERE c.node_id = presence_sync.node_id
                AND c.conn_id = ANY (presence_sync.leave_ids)
             UNION
             SELECT picloud.presence_lock_key(u.a, u.t, u.s)
               FROM unnest(presence_sync.app_ids, presence_sync.topics, presence_sync.subjects)
                    AS u(a, t, s)) k
      WHERE k.key IS NOT NULL
      ORDER BY k.key;
    v_known := picloud.presence_heartbeat(presence_sync.node_id, presence_sync.lease);
    -- Joins before leaves: a tab closing as another opens is neither a leave nor a join.
    PERFORM picloud.presence_join(presence_sync.node_id, presence_sync.conn_ids,
                                  presence_sync.app_ids, presence_sync.topics,
                                  presence_sync.subjects, presence_sync.infos);
    PERFORM picloud.presence_leave(presence_sync.node_id, presence_sync.leave_ids);
    RETURN v_known;
END
$$;
COMMENT ON FUNCTION picloud.presence_sync(text, interval, bigint[], bigint[], uuid[], text[], text[], jsonb[]) IS
    'A relay''s round trip: renew the lease (picloud.presence_heartbeat), then the joins and the leaves since its last call (joins first: a connection replaced by another of the same subject announces nothing), every subject involved locked up front in key order. Returns the heartbeat''s answer: false means the node had been forgotten and must join every connection it holds again.';

CREATE OR REPLACE FUNCTION picloud.presence_identity(app_id uuid, topic text, token text)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_subject text;
BEGIN
    -- The token is checked only for presence topics (the signature costs an HMAC).
    PERFORM 1 FROM picloud.topics t
      WHERE t.app_id = presence_identity.app_id AND t.name = presence_identity.topic
        AND t.presence;
    IF NOT FOUND OR presence_identity.token IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT v.subject INTO v_subject
      FROM picloud.verified_token_claims(presence_identity.app_id, presence_identity.topic,
                                         presence_identity.token) v;
    IF v_subject IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT jsonb_build_object('subject', v_subject, 'info', c.info)
              FROM picloud.subscriber_token_claims(presence_identity.token) c);
END
$$;
COMMENT ON FUNCTION picloud.presence_identity(uuid, text, text) IS
    'Who a subscriber is on a presence topic: {"subject","info"} when the topic has presence and the token is valid for it and names a subject; NULL otherwise (not present: anonymous, or a topic without presence).';

CREATE OR REPLACE FUNCTION picloud.topic_presence(app_id uuid, topic text)
RETURNS TABLE (subject text, info jsonb, connected_at timestamptz, connections integer)
LANGUAGE sql STABLE AS $$
    SELECT p.subject,
           (array_agg(p.info ORDER BY p.connected_at))[1],
           min(p.connected_at),
           count(*)::integer
      FROM picloud.presence p
     WHERE p.app_id = topic_presence.app_id AND p.topic = topic_presence.topic
     GROUP BY p.subject
     ORDER BY min(p.connected_at), p.subject
$$;
COMMENT ON FUNCTION picloud.topic_presence(uuid, text) IS
    'The subjects present on a topic of an app, cluster-wide: each with the info of its earliest live connection, when that began, and how many live connections it has.';

-- A topic whose presence flag changes ends its streams: clients reconnect in the new mode
-- (and their presence rows go with the old streams).
CREATE OR REPLACE TRIGGER topics_close_streams_on_presence
    AFTER UPDATE OF presence ON picloud.topics
    FOR EACH ROW
    WHEN (OLD.presence IS DISTINCT FROM NEW.presence)
    EXECUTE FUNCTION picloud.topics_notify_close();
