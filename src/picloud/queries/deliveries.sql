-- name: create_handler
-- Register a webhook, SQL or topic handler as the database's own caller (the CLI).
SELECT id, app_id, name, kind, url, secret, function, topic, timeout_ms, created_at, updated_at
  FROM picloud.create_handler(%(app_id)s, %(name)s, %(kind)s, %(url)s, %(secret)s,
                              %(function)s, %(topic)s, %(timeout_ms)s::integer);

-- name: list_handlers
-- An app's handlers (webhook secrets are shown only at creation).
SELECT id, app_id, name, kind, url, function, topic, timeout_ms, created_at, updated_at
  FROM picloud.handlers WHERE app_id = %(app_id)s ORDER BY created_at, id;

-- name: update_handler
-- Change a handler as the database's own caller (the CLI); NULL leaves a field as it is
-- (P0002: none).
SELECT id, app_id, name, kind, url, function, topic, timeout_ms, created_at, updated_at
  FROM picloud.update_handler(%(app_id)s, %(id)s, %(name)s, %(url)s, %(secret)s,
                              %(function)s, %(topic)s, %(timeout_ms)s::integer);

-- name: delete_handler
-- Delete a handler no trigger uses (23503 while one does, P0002 when none).
SELECT picloud.delete_handler(%(app_id)s, %(id)s) AS id;

-- name: create_trigger
-- Create a trigger on a source of an app, as the database's own caller (the CLI).
SELECT id, app_id, name, source, filter, handler_id, max_attempts, enabled, created_at,
       updated_at
  FROM picloud.create_trigger(%(app_id)s, %(name)s, %(source)s, %(handler_id)s, %(filter)s,
                              %(max_attempts)s::integer, %(enabled)s);

-- name: list_triggers
-- An app's triggers.
SELECT id, app_id, name, source, filter, handler_id, max_attempts, enabled, created_at, updated_at
  FROM picloud.triggers WHERE app_id = %(app_id)s ORDER BY created_at, id;

-- name: update_trigger
-- Change a trigger as the database's own caller (the CLI); NULL leaves a field as it is
-- (P0002: none).
SELECT id, app_id, name, source, filter, handler_id, max_attempts, enabled, created_at,
       updated_at
  FROM picloud.update_trigger(%(app_id)s, %(id)s, %(name)s, %(handler_id)s, %(filter)s,
                              %(max_attempts)s::integer, %(enabled)s);

-- name: delete_trigger
-- Delete a trigger (P0002 when none); its queued deliveries still run.
SELECT picloud.delete_trigger(%(app_id)s, %(id)s) AS id;

-- name: list_deliveries
-- An app's deliveries, newest first, optionally by status and source (22023: unknown).
SELECT id, app_id, trigger_id, handler_id, source, subject, event, status, attempts,
       max_attempts, run_at, lease_owner, lease_expires_at, last_error, retry_of, created_at,
       updated_at, finished_at
  FROM picloud.list_deliveries(%(app_id)s, %(status)s, %(source)s, %(limit)s);

-- name: get_delivery
-- One delivery of an app.
SELECT id, app_id, trigger_id, handler_id, source, subject, event, status, attempts,
       max_attempts, run_at, lease_owner, lease_expires_at, last_error, retry_of, created_at,
       updated_at, finished_at
  FROM picloud.deliveries WHERE app_id = %(app_id)s AND id = %(id)s;

-- name: list_delivery_attempts
-- The runs of one delivery, first first.
SELECT attempt, worker, started_at, finished_at, outcome, error
  FROM picloud.delivery_attempts
 WHERE app_id = %(app_id)s AND delivery_id = %(id)s ORDER BY attempt;

-- name: list_dead_letters
-- An app's dead letters, newest first, optionally by source (22023: unknown).
SELECT id, app_id, delivery_id, trigger_id, handler_id, source, subject, event, attempts,
       last_error, created_at, retried_at, retry_delivery_id
  FROM picloud.list_dead_letters(%(app_id)s, %(source)s, %(limit)s);

-- name: get_dead_letter
-- One dead letter of an app.
SELECT id, app_id, delivery_id, trigger_id, handler_id, source, subject, event, attempts,
       last_error, created_at, retried_at, retry_delivery_id
  FROM picloud.dead_letters WHERE app_id = %(app_id)s AND id = %(id)s;

-- name: retry_dead_letter
-- Re-enqueue one of an app's dead letters as a fresh delivery (no row: no such dead letter;
-- PC410 when it was retried already and force is false).
SELECT picloud.retry_dead_letter(dl.id, %(force)s) AS delivery_id
  FROM picloud.dead_letters dl WHERE dl.app_id = %(app_id)s AND dl.id = %(id)s;

-- name: count_dead_letters_to_retry
-- How many dead letters a bulk retry with this filter would retry, and as of when.
SELECT picloud.dead_letters_to_retry(%(app_id)s, %(source)s, %(since)s::timestamptz,
                                     coalesce(%(until)s::timestamptz, now()),
                                     %(handler_id)s::uuid) AS matching,
       coalesce(%(until)s::timestamptz, now()) AS until;

-- name: retry_dead_letters_batch
-- One batch of a bulk retry whose total the caller counted already.
SELECT picloud.retry_dead_letters(%(app_id)s, %(source)s, %(since)s::timestamptz,
                                  %(until)s::timestamptz, %(handler_id)s::uuid,
                                  %(limit)s) AS retried;

-- name: discard_dead_letter
-- Delete a dead letter of an app (P0002 when none).
SELECT picloud.discard_dead_letter(%(app_id)s, %(id)s) AS id;

-- name: get_dead_letter_any_app
-- A dead letter by id alone, with its app (for the CLI).
SELECT id, app_id FROM picloud.dead_letters WHERE id = %(id)s;

-- HTTP statements (web/handlers.py, triggers.py, deliveries.py), each named
-- api_<handler>: picloud.authorize, then the operation, in one statement (web/auth.py:
-- credentials). The key is passed on where the operation asks for more than the route's
-- capability (sql handlers: instance:admin; topic handlers: topics:publish). A read is a
-- LATERAL subquery with OFFSET 0, so it is not flattened into a join the planner could
-- start from the table (skipping authorize when no row matches): authorize runs first.

-- name: api_create_handler
-- Register a handler; its webhook secret is shown here only.
SELECT h.id, h.app_id, h.name, h.kind, h.url, h.secret, h.function, h.topic, h.timeout_ms,
       h.created_at, h.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.create_handler(a.app, %(name)s, %(kind)s, %(url)s, %(secret)s,
                                      %(function)s, %(topic)s, %(timeout_ms)s::integer,
                                      %(api_key)s) h;

-- name: api_list_handlers
-- An app's handlers, without their secrets.
SELECT h.id, h.app_id, h.name, h.kind, h.url, h.function, h.topic, h.timeout_ms, h.created_at,
       h.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.handlers h WHERE h.app_id = a.app
                 ORDER BY h.created_at, h.id OFFSET 0) h
 ORDER BY h.created_at, h.id;

-- name: api_get_handler
-- One handler, without its secret (no row: none).
SELECT h.id, h.app_id, h.name, h.kind, h.url, h.function, h.topic, h.timeout_ms, h.created_at,
       h.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.handlers h WHERE h.app_id = a.app AND h.id = %(id)s
                 OFFSET 0) h;

-- name: api_update_handler
-- Change a handler (NULL: unchanged), without showing its secret.
SELECT h.id, h.app_id, h.name, h.kind, h.url, h.function, h.topic, h.timeout_ms, h.created_at,
       h.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.update_handler(a.app, %(id)s, %(name)s, %(url)s, %(secret)s,
                                      %(function)s, %(topic)s, %(timeout_ms)s::integer, %(kind)s,
                                      %(api_key)s) h;

-- name: api_delete_handler
-- Delete a handler no trigger uses (23503 while one does, P0002 when none).
SELECT d.id
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.delete_handler(a.app, %(id)s) AS d(id);

-- name: api_create_trigger
-- Create a trigger on a source of the app.
SELECT t.id, t.app_id, t.name, t.source, t.filter, t.handler_id, t.max_attempts, t.enabled,
       t.created_at, t.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.create_trigger(a.app, %(name)s, %(source)s, %(handler_id)s, %(filter)s,
                                      %(max_attempts)s::integer, %(enabled)s, %(api_key)s) t;

-- name: api_list_triggers
-- An app's triggers.
SELECT t.id, t.app_id, t.name, t.source, t.filter, t.handler_id, t.max_attempts, t.enabled,
       t.created_at, t.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.triggers t WHERE t.app_id = a.app
                 ORDER BY t.created_at, t.id OFFSET 0) t
 ORDER BY t.created_at, t.id;

-- name: api_get_trigger
-- One trigger (no row: none).
SELECT t.id, t.app_id, t.name, t.source, t.filter, t.handler_id, t.max_attempts, t.enabled,
       t.created_at, t.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.triggers t WHERE t.app_id = a.app AND t.id = %(id)s
                 OFFSET 0) t;

-- name: api_update_trigger
-- Change a trigger (NULL: unchanged).
SELECT t.id, t.app_id, t.name, t.source, t.filter, t.handler_id, t.max_attempts, t.enabled,
       t.created_at, t.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.update_trigger(a.app, %(id)s, %(name)s, %(handler_id)s, %(filter)s,
                                      %(max_attempts)s::integer, %(enabled)s, %(source)s,
                                      %(api_key)s) t;

-- name: api_delete_trigger
-- Delete a trigger (P0002 when none); its queued deliveries still run.
SELECT d.id
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.delete_trigger(a.app, %(id)s) AS d(id);

-- name: api_list_deliveries
-- An app's deliveries, newest first, optionally by status and source (22023: unknown).
SELECT d.id, d.app_id, d.trigger_id, d.handler_id, d.source, d.subject, d.event, d.status,
       d.attempts, d.max_attempts, d.run_at, d.lease_owner, d.lease_expires_at, d.last_error,
       d.retry_of, d.created_at, d.updated_at, d.finished_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.list_deliveries(a.app, %(status)s, %(source)s, %(limit)s) d;

-- name: api_get_delivery
-- One delivery with its runs (attempts_made: the claims counted; attempts: the runs).
SELECT d.id, d.app_id, d.trigger_id, d.handler_id, d.source, d.subject, d.event, d.status,
       d.attempts AS attempts_made, d.max_attempts, d.run_at, d.lease_owner,
       d.lease_expires_at, d.last_error, d.retry_of, d.created_at, d.updated_at,
       d.finished_at, picloud.delivery_attempts_of(d.app_id, d.id) AS attempts
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.deliveries d WHERE d.app_id = a.app AND d.id = %(id)s
                 OFFSET 0) d;

-- name: api_list_dead_letters
-- An app's dead letters, newest first, optionally by source (22023: unknown).
SELECT dl.id, dl.app_id, dl.delivery_id, dl.trigger_id, dl.handler_id, dl.source, dl.subject,
       dl.event, dl.attempts, dl.last_error, dl.created_at, dl.retried_at, dl.retry_delivery_id
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.list_dead_letters(a.app, %(source)s, %(limit)s) dl;

-- name: api_get_dead_letter
-- One dead letter (no row: none).
SELECT dl.id, dl.app_id, dl.delivery_id, dl.trigger_id, dl.handler_id, dl.source, dl.subject,
       dl.event, dl.attempts, dl.last_error, dl.created_at, dl.retried_at, dl.retry_delivery_id
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.dead_letters dl WHERE dl.app_id = a.app AND dl.id = %(id)s
                 OFFSET 0) dl;

-- name: api_retry_dead_letter
-- Re-enqueue a dead letter (P0002: none; PC410: retried already and not force).
SELECT r.delivery_id
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.retry_dead_letter(a.app, %(id)s, %(force)s) AS r(delivery_id);

-- name: api_count_dead_letters_to_retry
-- How many dead letters a bulk retry with this filter would retry, and as of when.
SELECT picloud.dead_letters_to_retry(a.app, %(source)s, %(since)s,
                                     coalesce(%(until)s, now()), %(handler_id)s) AS matching,
       coalesce(%(until)s, now()) AS until
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a;

-- name: api_retry_dead_letters
-- One batch of a bulk retry; matching is counted before it, so remaining = matching - retried.
SELECT picloud.dead_letters_to_retry(a.app, %(source)s, %(since)s, %(until)s,
                                     %(handler_id)s) AS matching,
       picloud.retry_dead_letters(a.app, %(source)s, %(since)s, %(until)s, %(handler_id)s,
                                  %(limit)s) AS retried
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a;

-- name: api_discard_dead_letter
-- Delete a dead letter (P0002 when none).
SELECT d.id
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.discard_dead_letter(a.app, %(id)s) AS d(id);

-- name: api_list_trigger_sources
-- The sources a trigger can listen to (picloud.event_sources()).
SELECT picloud.event_sources() AS sources;
