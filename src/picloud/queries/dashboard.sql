-- name: topic_stream_position
-- For an operator's stream of a topic: its epoch, last sequence number and the oldest
-- retained one, and whether it has presence.
SELECT t.epoch, t.last_seq AS head,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = t.app_id AND m.topic = t.name) AS oldest, t.presence
  FROM picloud.topics t
 WHERE t.app_id = %(app_id)s AND t.name = %(topic)s;

-- name: operator_stream_check
-- For an operator's stream of several topics, in one statement: the caller's live key,
-- whether the app exists, and per requested topic (in request order) its epoch, head,
-- oldest retained seq and presence flag, read only when the key holds topics:manage on
-- that app (the rule of picloud.web.auth.Principal.allows). No row: unknown key.
SELECT k.id AS key_id, k.app_id AS key_app_id, k.capabilities, a.id AS app_id, c.topic,
       t.epoch, t.last_seq AS head, t.presence,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE t.name IS NOT NULL AND m.app_id = t.app_id AND m.topic = t.name) AS oldest
  FROM picloud.authenticate_key(%(key)s) k
  LEFT JOIN picloud.apps a ON a.id = %(app_id)s
 CROSS JOIN unnest(%(topics)s::text[]) WITH ORDINALITY AS c(topic, ord)
  LEFT JOIN picloud.topics t
    ON t.app_id = a.id AND t.name = c.topic
   AND ('instance:admin' = ANY (k.capabilities)
        OR (k.app_id = a.id AND k.capabilities && ARRAY['app:admin', 'topics:manage']::text[]))
 ORDER BY c.ord;
