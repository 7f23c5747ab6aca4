-- Message positions and the commit-visibility horizon.
--
-- Each topic incarnation draws its message positions from a sequence of its own, so
-- publishers of one topic never wait for each other's commits. The price: positions are
-- drawn in one order and become visible in another (transactions commit out of order),
-- and a rolled-back publish leaves a gap. A reader therefore moves past a position only
-- when it is settled: the next position is visible (no gap), or every transaction that
-- may still hold a position below it has ended (the PgQ technique: the in-flight
-- transactions of a snapshot taken after the read, pg_current_snapshot()). To tell
-- publishers among them, a publisher holds, from before it draws until its commit, a
-- shared advisory lock keyed by its transaction id and the topic; a reader's exclusive
-- try-lock on that key fails exactly while such a transaction is in flight.

CREATE OR REPLACE FUNCTION picloud.position_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1885435475 $$;
COMMENT ON FUNCTION picloud.position_lock_class() IS
    'First key of the advisory locks a publisher holds until it commits: (class, topic_lock_key # xid bits) tells readers that this transaction may hold positions of the topic (picloud.topic_blockers).';

CREATE OR REPLACE FUNCTION picloud.topic_guard_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1885435476 $$;
COMMENT ON FUNCTION picloud.topic_guard_class() IS
    'First key of the advisory lock (class, topic_lock_key) publishers share until commit and a topic''s deletion takes exclusively: a topic is not deleted under a publish (no orphan messages).';

CREATE OR REPLACE FUNCTION picloud.topic_lock_key(app_id uuid, topic text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtext(topic_lock_key.app_id::text || '/' || topic_lock_key.topic)
$$;
COMMENT ON FUNCTION picloud.topic_lock_key(uuid, text) IS
    'Second key of a topic''s advisory locks (a hash: a collision only makes a reader or a deletion wait longer, never skip).';

CREATE OR REPLACE FUNCTION picloud.xid_lock_bits(xid bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((xid_lock_bits.xid % 4294967296) - 2147483648)::integer
$$;
COMMENT ON FUNCTION picloud.xid_lock_bits(bigint) IS
    'The low 32 bits of a transaction id as an integer lock key (transactions in flight together never share them).';

CREATE OR REPLACE FUNCTION picloud.topic_head(app_id uuid, topic text) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(pg_sequence_last_value(t.positions), 0)
      FROM picloud.topics t
     WHERE t.app_id = topic_head.app_id AND t.name = topic_head.topic
$$;
COMMENT ON FUNCTION picloud.topic_head(uuid, text) IS
    'The last position drawn in the topic (0: none yet; NULL: no such topic). Its message may not be committed yet, or never: a cursor beyond it was never handed out.';

CREATE OR REPLACE FUNCTION picloud.holds_positions(app_id uuid, topic text, xid bigint)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    -- Try the exclusive form and let go at once (CASE fixes the order of the two calls).
    SELECT CASE WHEN pg_try_advisory_lock(picloud.position_lock_class(), k.key)
                THEN NOT pg_advisory_unlock(picloud.position_lock_class(), k.key)
                ELSE true END
      FROM (SELECT picloud.topic_lock_key(holds_positions.app_id, holds_positions.topic)
                   # picloud.xid_lock_bits(holds_positions.xid) AS key) k
$$;
COMMENT ON FUNCTION picloud.holds_positions(uuid, text, bigint) IS
    'True while transaction xid, still in flight, has drawn (or is about to draw) positions of the topic.';

CREATE OR REPLACE FUNCTION picloud.topic_blockers(app_ids uuid[], topics text[], xids bigint[])
RETURNS TABLE (app_id uuid, topic text, xid bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_xip bigint[];
BEGIN
    -- Who is in flight now (this statement's fresh snapshot and the backends' current
    -- transactions), after whatever the caller read before: every publisher that drew a
    -- position the caller saw exceeded is among them or has ended. (Under REPEATABLE READ
    -- the snapshot would be the transaction's.)
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'topic_blockers needs READ COMMITTED' USING ERRCODE = '25000';
    END IF;
    IF cardinality(topic_blockers.app_ids) IS DISTINCT FROM cardinality(topic_blockers.topics)
       OR cardinality(topic_blockers.app_ids) IS DISTINCT FROM cardinality(topic_blockers.xids)
    THEN
        RAISE EXCEPTION 'app_ids, topics and xids must have one length' USING ERRCODE = '22023';
    END IF;
    -- A snapshot lists only the in-flight xids below its xmax (the newest completed
    -- + 1); newer ones still running are in their backends' entries. Low 32
    -- bits (what the lock keys use): prepared transactions come from the snapshot.
    PERFORM pg_stat_clear_snapshot();  -- the backends as they are now, not as first read
    SELECT array_agg(DISTINCT c.x) INTO v_xip
      FROM (SELECT s::text::bigint % 4294967296 AS x
              FROM pg_snapshot_xip(pg_current_snapshot()) s
            UNION ALL
            SELECT a.backend_xid::text::bigint
              FROM pg_stat_get_activity(NULL) a
             WHERE a.backend_xid IS NOT NULL) c;
    RETURN QUERY
    SELECT c.app_id, c.topic, x.xid
      FROM unnest(topic_blockers.app_ids, topic_blockers.topics, topic_blockers.xids)
           AS c(app_id, topic, xid)
     CROSS JOIN LATERAL unnest(CASE WHEN c.xid IS NULL THEN coalesce(v_xip, '{}')
                                    ELSE ARRAY[c.xid] END) AS x(xid)
     WHERE picloud.holds_positions(c.app_id, c.topic, x.xid);
END
$$;
COMMENT ON FUNCTION picloud.topic_blockers(uuid[], text[], bigint[]) IS
    'For each (app_id, topic, xid): the transactions (low 32 bits of their ids) still in flight that may hold positions of the topic. xid NULL asks about every transaction in flight now (the snapshot''s and the backends''; seeing other roles'' backends needs pg_read_all_stats): call it after reading, and once all it returned have ended (ask again with their xids), every position up to what that read saw is settled. Needs READ COMMITTED (25000); 22023: arrays of different lengths.';

CREATE OR REPLACE FUNCTION picloud.topic_position(
    app_id uuid, topic text, OUT head bigint, OUT blockers bigint[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- In this order: the head first, then who may still hold a position up to it.
    head := picloud.topic_head(topic_position.app_id, topic_position.topic);
    SELECT coalesce(array_agg(b.xid), '{}') INTO blockers
      FROM picloud.topic_blockers(ARRAY[topic_position.app_id], ARRAY[topic_position.topic],
                                  ARRAY[NULL::bigint]) b;
END
$$;
COMMENT ON FUNCTION picloud.topic_position(uuid, text) IS
    'Where a new stream of a topic starts: its head (picloud.topic_head) and the publishing transactions that may still commit a position up to it; head is settled once they have all ended.';

CREATE OR REPLACE FUNCTION picloud.settled_messages(
    app_id uuid, topic text, after bigint, max_rows integer)
RETURNS SETOF picloud.messages
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_head    bigint;
    v_blocked boolean;
BEGIN
    -- Head, then blockers, then the read (each statement its own, later snapshot): with
    -- no publisher in flight every visible row up to the head is settled; otherwise only
    -- the unbroken run after `after` is.
    v_head := picloud.topic_head(settled_messages.app_id, settled_messages.topic);
    v_blocked := EXISTS (SELECT FROM picloud.topic_blockers(
        ARRAY[settled_messages.app_id], ARRAY[settled_messages.topic], ARRAY[NULL::bigint]));
    RETURN QUERY
    SELECT m.app_id, m.topic, m.seq, m.message, m.published_at, m.from_subject
      FROM (SELECT y.*, row_number() OVER (ORDER BY y.seq) AS n
              FROM (SELECT * FROM picloud.messages x
                     WHERE x.app_id = settled_messages.app_id
                       AND x.topic = settled_messages.topic
                       AND x.seq > settled_messages.after AND x.seq <= v_head
                     ORDER BY x.seq LIMIT settled_messages.max_rows) y) m
     WHERE NOT v_blocked OR m.seq = settled_messages.after + m.n
     ORDER BY m.seq;
END
$$;
COMMENT ON FUNCTION picloud.settled_messages(uuid, text, bigint, integer) IS
    'Up to max_rows messages of a topic after position `after` that no later commit can precede (the history route reads these): all visible ones when no publisher of the topic is in flight, else the unbroken run of positions after `after`.';

CREATE OR REPLACE FUNCTION picloud.topics_create_positions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_name text := 'p' || replace(gen_random_uuid()::text, '-', '');
BEGIN
    EXECUTE format('CREATE SEQUENCE picloud_positions.%I AS bigint', v_name);
    NEW.positions := format('picloud_positions.%I', v_name)::regclass;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION picloud.topics_create_positions() IS
    'Trigger: a new topic incarnation gets its own positions sequence (numbering starts at 1).';

CREATE OR REPLACE TRIGGER topics_create_positions
    BEFORE INSERT ON picloud.topics
    FOR EACH ROW EXECUTE FUNCTION picloud.topics_create_positions();

CREATE OR REPLACE FUNCTION picloud.topics_guard_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Waits for publishes of this topic in flight; later ones wait for this transaction
    -- and then find no topic.
    PERFORM pg_advisory_xact_lock(picloud.topic_guard_class(),
                                  picloud.topic_lock_key(OLD.app_id, OLD.name));
    RETURN OLD;
END
$$;
COMMENT ON FUNCTION picloud.topics_guard_delete() IS
    'Trigger: a topic is deleted only once no publish of it is in flight (picloud.topic_guard_class).';

CREATE OR REPLACE TRIGGER topics_guard_delete
    BEFORE DELETE ON picloud.topics
    FOR EACH ROW EXECUTE FUNCTION picloud.topics_guard_delete();

CREATE OR REPLACE FUNCTION picloud.topics_drop_positions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_class c WHERE c.oid = OLD.positions) THEN
        EXECUTE format('DROP SEQUENCE %s', OLD.positions);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.topics_drop_positions() IS
    'Trigger: a deleted topic incarnation takes its positions sequence with it.';

CREATE OR REPLACE TRIGGER topics_drop_positions
    AFTER DELETE ON picloud.topics
    FOR EACH ROW EXECUTE FUNCTION picloud.topics_drop_positions();
