-- name: topic_stream_position
-- For an operator's stream of a topic: its epoch, head and the publishes that may still
-- commit up to it (picloud.topic_position), and the oldest retained position.
SELECT t.epoch, p.head, p.blockers,
       (SELECT min(m.seq) FROM picloud.messages m
         WHERE m.app_id = t.app_id AND m.topic = t.name) AS oldest
  FROM picloud.topics t
 CROSS JOIN LATERAL picloud.topic_position(t.app_id, t.name) p
 WHERE t.app_id = %(app_id)s AND t.name = %(topic)s;
