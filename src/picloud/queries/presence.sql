-- name: presence_sync
-- A relay renews its lease and writes the joins and leaves of its streams since its last
-- call; known false: the node had been forgotten and must join every stream again.
SELECT picloud.presence_sync(%(node_id)s, make_interval(secs => %(lease_sec)s),
                             %(leave_ids)s::bigint[], %(conn_ids)s::bigint[],
                             %(app_ids)s::uuid[], %(topics)s::text[], %(subjects)s::text[],
                             %(infos)s::jsonb[]) AS known;

-- name: presence_expire
-- Remove the nodes whose lease ran out, announcing their subjects' leaves.
SELECT picloud.presence_expire() AS left_count;

-- name: presence_depart
-- A node stops: its streams leave and its lease goes.
SELECT picloud.presence_depart(%(node_id)s) AS left_count;

-- name: presence_snapshot
-- Who is present (subject and info of the earliest live connection) on several topics.
SELECT c.app_id::text AS app_id, c.topic, p.subject, p.info
  FROM unnest(%(app_ids)s::uuid[], %(topics)s::text[]) AS c(app_id, topic)
 CROSS JOIN LATERAL picloud.topic_presence(c.app_id, c.topic) p;

-- name: topic_presence_with_key
-- GET .../topics/{name}/presence in one statement: picloud.authorize, the topic (a malformed
-- name is 22023; no row: no such topic) and, when it tracks presence, who is present.
SELECT t.presence,
       CASE WHEN t.presence
            THEN (SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.connected_at, p.subject),
                                  '[]')
                    FROM picloud.topic_presence(t.app_id, t.name) p)
       END AS subjects
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.topic(a.app, %(topic)s) t;

-- name: topic_presence_with_token
-- GET /realtime/presence/{topic} on the app's host in one statement: the app behind the
-- Host header, the subscribe verdict for the token (as for the stream) and, when allowed,
-- who is present.
SELECT r.app_id, v.verdict, t.presence,
       CASE WHEN v.verdict = 'allow' AND t.presence
            THEN (SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.connected_at, p.subject),
                                  '[]')
                    FROM picloud.topic_presence(r.app_id, t.name) p)
       END AS subjects
  FROM (SELECT picloud.resolve_app(%(host)s) AS app_id OFFSET 0) r
  LEFT JOIN LATERAL (SELECT picloud.authorize_subscribe(r.app_id, %(topic)s, %(token)s)
                            AS verdict) v ON r.app_id IS NOT NULL
  LEFT JOIN picloud.topics t ON t.app_id = r.app_id AND t.name = %(topic)s;
