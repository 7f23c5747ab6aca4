-- name: subscribe_check
-- For an SSE subscription: the app behind the Host header, the authorisation verdict,
-- the topic's epoch, its head and the publishes that may still commit up to it
-- (picloud.topic_position), the oldest retained position, whether it has presence and who
-- the token says the subscriber is there ({"subject","info"} or NULL).
SELECT r.app_id,
       CASE WHEN r.app_id IS NOT NULL
            THEN picloud.authorize_subscribe(r.app_id, %(topic)s, %(token)s) END AS verdict,
       t.epoch, (p.pos).head, (p.pos).blockers,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = r.app_id AND m.topic = %(topic)s) AS oldest,
       coalesce(t.presence, false) AS presence,
       CASE WHEN t.presence THEN picloud.presence_identity(r.app_id, %(topic)s, %(token)s) END
           AS identity
  FROM (SELECT picloud.resolve_app(%(host)s) AS app_id OFFSET 0) r
  LEFT JOIN picloud.topics t ON t.app_id = r.app_id AND t.name = %(topic)s
  LEFT JOIN LATERAL (SELECT picloud.topic_position(t.app_id, t.name) AS pos
                      WHERE t.app_id IS NOT NULL OFFSET 0) p ON true;

-- name: subscribe_check_many
-- For a multiplexed SSE stream: per requested topic (in request order), the app behind the
-- Host header, the authorisation verdict, the topic's epoch, head and its blockers
-- (picloud.topic_position), the oldest retained position, whether it has presence and who
-- the token says the subscriber is there.
SELECT r.app_id, c.topic,
       CASE WHEN r.app_id IS NOT NULL
            THEN picloud.authorize_subscribe(r.app_id, c.topic, %(token)s) END AS verdict,
       t.epoch, (p.pos).head, (p.pos).blockers,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = r.app_id AND m.topic = c.topic) AS oldest,
       coalesce(t.presence, false) AS presence,
       CASE WHEN t.presence THEN picloud.presence_identity(r.app_id, c.topic, %(token)s) END
           AS identity
  FROM (SELECT picloud.resolve_app(%(host)s) AS app_id OFFSET 0) r
 CROSS JOIN unnest(%(topics)s::text[]) WITH ORDINALITY AS c(topic, ord)
  LEFT JOIN picloud.topics t ON t.app_id = r.app_id AND t.name = c.topic
  LEFT JOIN LATERAL (SELECT picloud.topic_position(t.app_id, t.name) AS pos
                      WHERE t.app_id IS NOT NULL OFFSET 0) p ON true
 ORDER BY c.ord;

-- name: relay_listen
-- Subscribe the relay's connection to published messages, control messages and presence;
-- the channels' names.
SELECT picloud.listen(picloud.realtime_channel()) AS messages,
       picloud.listen(picloud.realtime_control_channel()) AS control,
       picloud.listen(picloud.presence_channel()) AS presence;

-- name: replay_messages
-- SSE frames (position and data text) of one topic incarnation (epoch) after a position
-- and up to a settled one (picloud.realtime.subscribe: what the stream's channel had
-- passed when it joined); nothing once the topic has another epoch.
SELECT m.seq, picloud.sse_frame_data(m) AS data
  FROM picloud.topics t
  JOIN picloud.messages m ON m.app_id = t.app_id AND m.topic = t.name
 WHERE t.app_id = %(app_id)s AND t.name = %(topic)s AND t.epoch = %(epoch)s
   AND m.seq > %(after)s AND m.seq <= %(upto)s
 ORDER BY m.seq LIMIT %(limit)s;

-- name: relay_fetch
-- SSE frames for several channels at once, each after its own last delivered position, of
-- the channel's topic incarnation only (a recreated topic's messages are not its). The
-- relay delivers only the settled part (picloud.realtime.relay).
SELECT c.app_id::text AS app_id, c.topic, m.seq, m.data
  FROM unnest(%(app_ids)s::uuid[], %(topics)s::text[], %(epochs)s::bigint[],
              %(afters)s::bigint[]) AS c(app_id, topic, epoch, after)
  JOIN picloud.topics t ON t.app_id = c.app_id AND t.name = c.topic AND t.epoch = c.epoch
 CROSS JOIN LATERAL (
        SELECT x.seq, picloud.sse_frame_data(x) AS data
          FROM picloud.messages x
         WHERE x.app_id = c.app_id AND x.topic = c.topic AND x.seq > c.after
         ORDER BY x.seq LIMIT %(limit)s) m
 ORDER BY 1, 2, 3;

-- name: relay_blockers
-- Of these (channel, transaction) pairs (xid NULL: every transaction in flight now), the
-- ones still publishing to the channel's topic: a gap below what the relay read is
-- settled once none of the pairs asked about for it remain.
SELECT b.app_id::text AS app_id, b.topic, b.xid
  FROM picloud.topic_blockers(%(app_ids)s::uuid[], %(topics)s::text[], %(xids)s::bigint[]) b;

-- name: relay_committing
-- Whether some publish is still committing (it may have committed without a NOTIFY).
SELECT picloud.writers_committing('realtime') AS busy;

-- name: relay_open_topics
-- Which of these channels' topics still exist, their epochs, and whether they are open to
-- outside subscribers.
SELECT t.app_id::text AS app_id, t.name AS topic, t.epoch, t.external_subscribable AS external
  FROM picloud.topics t
  JOIN unnest(%(app_ids)s::uuid[], %(topics)s::text[]) AS c(app_id, topic)
    ON t.app_id = c.app_id AND t.name = c.topic;

-- name: prune_messages
-- Delete messages older than the retention period.
SELECT picloud.prune_messages(make_interval(secs => %(retention_sec)s)) AS deleted;

-- name: report_presence
-- This node's live subscriber counts per topic (replacing its previous report).
SELECT picloud.report_presence(%(node_id)s, %(app_ids)s::uuid[], %(topics)s::text[],
                               %(counts)s::integer[]) AS reported;
