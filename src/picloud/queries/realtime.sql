-- name: subscribe_check
-- For an SSE subscription: the app behind the Host header, the authorisation verdict,
-- the topic's epoch, its last sequence number and the oldest retained one.
SELECT r.app_id,
       CASE WHEN r.app_id IS NOT NULL
            THEN picloud.authorize_subscribe(r.app_id, %(topic)s, %(token)s) END AS verdict,
       t.epoch, t.last_seq AS head,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = r.app_id AND m.topic = %(topic)s) AS oldest
  FROM (SELECT picloud.resolve_app(%(host)s) AS app_id OFFSET 0) r
  LEFT JOIN picloud.topics t ON t.app_id = r.app_id AND t.name = %(topic)s;

-- name: subscribe_check_many
-- For a multiplexed SSE stream: per requested topic (in request order), the app behind the
-- Host header, the authorisation verdict, the topic's epoch, head and oldest retained seq.
SELECT r.app_id, c.topic,
       CASE WHEN r.app_id IS NOT NULL
            THEN picloud.authorize_subscribe(r.app_id, c.topic, %(token)s) END AS verdict,
       t.epoch, t.last_seq AS head,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = r.app_id AND m.topic = c.topic) AS oldest
  FROM (SELECT picloud.resolve_app(%(host)s) AS app_id OFFSET 0) r
 CROSS JOIN unnest(%(topics)s::text[]) WITH ORDINALITY AS c(topic, ord)
  LEFT JOIN picloud.topics t ON t.app_id = r.app_id AND t.name = c.topic
 ORDER BY c.ord;

-- name: relay_listen
-- Subscribe the relay's connection to published messages and to control messages; the
-- channels' names.
SELECT picloud.listen(picloud.realtime_channel()) AS messages,
       picloud.listen(picloud.realtime_control_channel()) AS control;

-- name: replay_messages
-- SSE frames (sequence number and data text) of one topic incarnation (epoch) after a
-- sequence number; nothing once the topic has another epoch. "from" is the publishing
-- token's subject, when it had one.
SELECT m.seq,
       (jsonb_build_object('topic', m.topic, 'message', m.message,
                           'published_at', m.published_at)
        || CASE WHEN m.from_subject IS NOT NULL
                THEN jsonb_build_object('from', m.from_subject) ELSE '{}' END)::text AS data
  FROM picloud.topics t
  JOIN picloud.messages m ON m.app_id = t.app_id AND m.topic = t.name
 WHERE t.app_id = %(app_id)s AND t.name = %(topic)s AND t.epoch = %(epoch)s
   AND m.seq > %(after)s
 ORDER BY m.seq LIMIT %(limit)s;

-- name: relay_fetch
-- SSE frames for several channels at once, each after its own last delivered number, of
-- the channel's topic incarnation only (a recreated topic's messages are not its).
SELECT c.app_id::text AS app_id, c.topic, m.seq, m.data
  FROM unnest(%(app_ids)s::uuid[], %(topics)s::text[], %(epochs)s::bigint[],
              %(afters)s::bigint[]) AS c(app_id, topic, epoch, after)
  JOIN picloud.topics t ON t.app_id = c.app_id AND t.name = c.topic AND t.epoch = c.epoch
 CROSS JOIN LATERAL (
        SELECT x.seq,
               (jsonb_build_object('topic', x.topic, 'message', x.message,
                                   'published_at', x.published_at)
                || CASE WHEN x.from_subject IS NOT NULL
                        THEN jsonb_build_object('from', x.from_subject) ELSE '{}' END)::text AS data
          FROM picloud.messages x
         WHERE x.app_id = c.app_id AND x.topic = c.topic AND x.seq > c.after
         ORDER BY x.seq LIMIT %(limit)s) m
 ORDER BY 1, 2, 3;

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
