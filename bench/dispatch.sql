-- name: make_app
-- The benchmark's app.
INSERT INTO picloud.apps (slug, name) VALUES (%(slug)s, %(slug)s) RETURNING id;

-- name: make_noop_function
-- A no-op SQL handler.
CREATE SCHEMA IF NOT EXISTS picloud_handlers;
CREATE OR REPLACE FUNCTION picloud_handlers.noop(event jsonb) RETURNS void
LANGUAGE sql AS '';
CREATE TABLE IF NOT EXISTS picloud_handlers.started (delivery_subject text, at timestamptz);
CREATE OR REPLACE FUNCTION picloud_handlers.stamp(event jsonb) RETURNS void
LANGUAGE sql AS 'INSERT INTO picloud_handlers.started VALUES (event->>''key'', clock_timestamp())';

-- name: make_sql_handler
-- An SQL handler of the app.
INSERT INTO picloud.handlers (app_id, name, kind, function)
VALUES (%(app_id)s, %(name)s, 'sql', %(function)s) RETURNING id;

-- name: make_webhook_handler
-- A webhook handler of the app.
INSERT INTO picloud.handlers (app_id, name, kind, url)
VALUES (%(app_id)s, %(name)s, 'webhook', %(url)s) RETURNING id;

-- name: make_trigger
-- A kv trigger of the app on keys matching the glob.
INSERT INTO picloud.triggers (app_id, name, source, filter, handler_id)
VALUES (%(app_id)s, %(name)s, 'kv', jsonb_build_object('match', %(match)s::text), %(handler_id)s);

-- name: enqueue_many
-- n kv events on keys <prefix><i>, in one transaction.
SELECT sum(picloud.enqueue_event(%(app_id)s, 'kv', %(prefix)s || i,
                                 jsonb_build_object('type', 'set', 'key', %(prefix)s || i)))
  FROM generate_series(1, %(n)s) i;

-- name: enqueue_one
-- One kv event.
SELECT picloud.enqueue_event(%(app_id)s, 'kv', %(key)s,
                             jsonb_build_object('type', 'set', 'key', %(key)s::text));

-- name: count_not_done
-- Deliveries still queued or running.
SELECT count(*) AS n FROM picloud.deliveries WHERE status IN ('pending', 'running');

-- name: latencies_ms
-- enqueue (transaction start) -> handler start, per stamped delivery.
SELECT extract(epoch FROM s.at - d.created_at) * 1000 AS ms
  FROM picloud_handlers.started s JOIN picloud.deliveries d ON d.subject = s.delivery_subject
 WHERE s.delivery_subject LIKE 'lat:%%';

-- name: raw_claim
-- The reference: a bare SKIP LOCKED claim of n pending rows.
UPDATE picloud.deliveries SET status = 'running', lease_owner = 'raw'
 WHERE (app_id, id) IN (SELECT app_id, id FROM picloud.deliveries
                         WHERE status = 'pending' AND run_at <= now()
                         ORDER BY run_at LIMIT %(n)s FOR UPDATE SKIP LOCKED)
RETURNING app_id, id;

-- name: raw_delete
-- The reference: delete what was claimed.
DELETE FROM picloud.deliveries WHERE id = ANY(%(ids)s);

-- name: reset
-- Empty the outbox between runs.
TRUNCATE picloud.delivery_attempts, picloud.deliveries, picloud.dead_letters;

-- name: api_claim
-- picloud.claim_deliveries, as the dispatcher calls it.
SELECT app_id, id FROM picloud.claim_deliveries('api', %(n)s, '30 seconds');

-- name: api_complete
-- Complete what was claimed, as the dispatcher's batched completions do.
SELECT * FROM picloud.finish_deliveries(%(app_ids)s, %(ids)s,
                                       array_fill('api'::text, ARRAY[cardinality(%(ids)s::bigint[])]),
                                       array_fill(NULL::text, ARRAY[cardinality(%(ids)s::bigint[])]));
