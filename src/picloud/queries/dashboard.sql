-- name: topic_stream_position
-- For an operator's stream of a topic, for a key with topics:manage: its epoch, last
-- sequence number and the oldest retained one. No row: no such topic.
SELECT t.app_id, t.epoch, t.last_seq AS head,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = t.app_id AND m.topic = t.name) AS oldest
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.topics
                 WHERE app_id = a.app AND name = %(topic)s OFFSET 0) t;
