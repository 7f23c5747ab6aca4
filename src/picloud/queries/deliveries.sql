-- name: create_handler
-- Register a webhook, SQL or topic handler (a webhook's secret is generated when not given).
INSERT INTO picloud.handlers (app_id, name, kind, url, secret, function, topic, timeout_ms)
VALUES (%(app_id)s, %(name)s, %(kind)s, %(url)s, %(secret)s, %(function)s, %(topic)s,
        coalesce(%(timeout_ms)s, 10000))
RETURNING id, app_id, name, kind, url, secret, function, topic, timeout_ms, created_at,
          updated_at;

-- name: list_handlers
-- An app's handlers (webhook secrets are shown only at creation).
SELECT id, app_id, name, kind, url, function, topic, timeout_ms, created_at, updated_at
  FROM picloud.handlers WHERE app_id = %(app_id)s ORDER BY created_at, id;

-- name: get_handler
-- One handler of an app, without its secret.
SELECT id, app_id, name, kind, url, function, topic, timeout_ms, created_at, updated_at
  FROM picloud.handlers WHERE app_id = %(app_id)s AND id = %(id)s;

-- name: update_handler
-- Change a handler; NULL leaves a field as it is.
UPDATE picloud.handlers
   SET name = coalesce(%(name)s, name), url = coalesce(%(url)s, url),
       secret = coalesce(%(secret)s, secret), function = coalesce(%(function)s, function),
       topic = coalesce(%(topic)s, topic), timeout_ms = coalesce(%(timeout_ms)s, timeout_ms)
 WHERE app_id = %(app_id)s AND id = %(id)s
RETURNING id, app_id, name, kind, url, function, topic, timeout_ms, created_at, updated_at;

-- name: trigger_targets_topic
-- Does this handler, or the current handler of this trigger, publish to a topic?
SELECT EXISTS (
    SELECT FROM picloud.handlers h
     WHERE h.app_id = %(app_id)s AND h.kind = 'topic'
       AND (h.id = %(handler_id)s
            OR h.id = (SELECT t.handler_id FROM picloud.triggers t
                        WHERE t.app_id = %(app_id)s AND t.id = %(trigger_id)s))) AS topic;

-- name: delete_handler
-- Delete a handler no trigger uses.
DELETE FROM picloud.handlers WHERE app_id = %(app_id)s AND id = %(id)s RETURNING id;

-- name: create_trigger
-- Create a trigger on a source of an app.
INSERT INTO picloud.triggers (app_id, name, source, filter, handler_id, max_attempts, enabled)
VALUES (%(app_id)s, %(name)s, %(source)s, coalesce(%(filter)s, '{}'::jsonb), %(handler_id)s,
        coalesce(%(max_attempts)s, 5), coalesce(%(enabled)s, true))
RETURNING id, app_id, name, source, filter, handler_id, max_attempts, enabled, created_at,
          updated_at;

-- name: list_triggers
-- An app's triggers.
SELECT id, app_id, name, source, filter, handler_id, max_attempts, enabled, created_at, updated_at
  FROM picloud.triggers WHERE app_id = %(app_id)s ORDER BY created_at, id;

-- name: get_trigger
-- One trigger of an app.
SELECT id, app_id, name, source, filter, handler_id, max_attempts, enabled, created_at, updated_at
  FROM picloud.triggers WHERE app_id = %(app_id)s AND id = %(id)s;

-- name: update_trigger
-- Change a trigger; NULL leaves a field as it is.
UPDATE picloud.triggers
   SET name = coalesce(%(name)s, name), filter = coalesce(%(filter)s, filter),
       handler_id = coalesce(%(handler_id)s, handler_id),
       max_attempts = coalesce(%(max_attempts)s, max_attempts),
       enabled = coalesce(%(enabled)s, enabled)
 WHERE app_id = %(app_id)s AND id = %(id)s
RETURNING id, app_id, name, source, filter, handler_id, max_attempts, enabled, created_at,
          updated_at;

-- name: delete_trigger
-- Delete a trigger (its queued deliveries still run).
DELETE FROM picloud.triggers WHERE app_id = %(app_id)s AND id = %(id)s RETURNING id;

-- name: list_deliveries
-- An app's deliveries, newest first, optionally by status and source.
SELECT id, app_id, trigger_id, handler_id, source, subject, event, status, attempts,
       max_attempts, run_at, lease_owner, lease_expires_at, last_error, retry_of, created_at,
       updated_at, finished_at
  FROM picloud.deliveries
 WHERE app_id = %(app_id)s
   AND (%(status)s::text IS NULL OR status = %(status)s)
   AND (%(source)s::text IS NULL OR source = %(source)s)
 ORDER BY id DESC
 LIMIT %(limit)s;

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
-- An app's dead letters, newest first, optionally by source.
SELECT id, app_id, delivery_id, trigger_id, handler_id, source, subject, event, attempts,
       last_error, created_at, retried_at, retry_delivery_id
  FROM picloud.dead_letters
 WHERE app_id = %(app_id)s AND (%(source)s::text IS NULL OR source = %(source)s)
 ORDER BY id DESC
 LIMIT %(limit)s;

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

-- name: retry_dead_letters
-- One batch of a bulk retry; matching is counted before it, so remaining = matching - retried.
SELECT picloud.dead_letters_to_retry(%(app_id)s, %(source)s, %(since)s::timestamptz,
                                     %(until)s::timestamptz, %(handler_id)s::uuid) AS matching,
       picloud.retry_dead_letters(%(app_id)s, %(source)s, %(since)s::timestamptz,
                                  %(until)s::timestamptz, %(handler_id)s::uuid,
                                  %(limit)s) AS retried;

-- name: discard_dead_letter
-- Delete a dead letter.
DELETE FROM picloud.dead_letters WHERE app_id = %(app_id)s AND id = %(id)s RETURNING id;

-- name: get_dead_letter_any_app
-- A dead letter by id alone, with its app (for the CLI).
SELECT id, app_id FROM picloud.dead_letters WHERE id = %(id)s;
