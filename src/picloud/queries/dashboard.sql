-- name: topic_stream_position
-- For an operator's stream of a topic, for a key with topics:manage: its epoch, head and
-- the publishes that may still commit up to it (picloud.topic_position), the oldest
-- retained position, and whether it has presence. No row: no such topic.
SELECT t.app_id, t.epoch, (p.pos).head, (p.pos).blockers, t.presence,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = t.app_id AND m.topic = t.name) AS oldest
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.topics
                 WHERE app_id = a.app AND name = %(topic)s OFFSET 0) t,
       LATERAL (SELECT picloud.topic_position(t.app_id, t.name) AS pos OFFSET 0) p;

-- name: operator_stream_check
-- For an operator's stream of several topics, in one statement: picloud.authorize, then per
-- requested topic (in request order) its epoch, head and blockers (picloud.topic_position),
-- oldest retained position and presence flag (NULL epoch: no such topic).
SELECT c.topic, t.epoch, (p.pos).head, (p.pos).blockers, t.presence,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE t.name IS NOT NULL AND m.app_id = t.app_id AND m.topic = t.name) AS oldest
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a
 CROSS JOIN unnest(%(topics)s::text[]) WITH ORDINALITY AS c(topic, ord)
  LEFT JOIN picloud.topics t ON t.app_id = a.app AND t.name = c.topic
  LEFT JOIN LATERAL (SELECT picloud.topic_position(t.app_id, t.name) AS pos
                      WHERE t.app_id IS NOT NULL OFFSET 0) p ON true
 ORDER BY c.ord;
