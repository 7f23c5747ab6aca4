-- name: topic_stream_position
-- For an operator's stream of a topic: its epoch, last sequence number and the oldest
-- retained one, and whether it has presence.
SELECT t.epoch, t.last_seq AS head,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = t.app_id AND m.topic = t.name) AS oldest, t.presence
  FROM picloud.topics t
 WHERE t.app_id = %(app_id)s AND t.name = %(topic)s;
