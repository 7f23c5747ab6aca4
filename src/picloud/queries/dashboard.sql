-- name: topic_stream_position
-- For an operator's stream of a topic: its epoch, last sequence number and the oldest
-- retained one.
SELECT t.epoch, t.last_seq AS head,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = t.app_id AND m.topic = t.name) AS oldest
  FROM picloud.topics t
 WHERE t.app_id = %(app_id)s AND t.name = %(topic)s;
