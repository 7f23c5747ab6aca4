-- name: cron_create
-- Create a cron job with its first due time (the CLI).
SELECT name, expression, timezone, payload, enabled, next_run_at, last_run_at, last_error,
       created_at, updated_at
  FROM picloud.create_cron_job(%(app_id)s, %(name)s, %(expression)s, %(timezone)s,
                               %(payload)s, %(enabled)s, %(next_run_at)s);

-- name: cron_list
-- An app's cron jobs by name.
SELECT name, expression, timezone, payload, enabled, next_run_at, last_run_at, last_error,
       created_at, updated_at
  FROM picloud.cron_jobs WHERE app_id = %(app_id)s ORDER BY name;

-- name: cron_update
-- Replace a cron job's settings and due time (the CLI gives every field; P0002: none).
SELECT name, expression, timezone, payload, enabled, next_run_at, last_run_at, last_error,
       created_at, updated_at
  FROM picloud.update_cron_job(%(app_id)s, %(name)s, %(expression)s, %(timezone)s,
                               %(payload)s, %(enabled)s, %(next_run_at)s);

-- name: cron_delete
-- Delete a cron job (P0002 when there is none).
SELECT picloud.delete_cron_job(%(app_id)s, %(name)s) AS name;

-- name: cron_claim_due
-- Lock enabled jobs that are due (or not yet scheduled) that no other node holds.
SELECT app_id, name, expression, timezone, next_run_at, now() AS now
  FROM picloud.cron_jobs
 WHERE enabled AND (next_run_at IS NULL OR next_run_at <= now())
 ORDER BY next_run_at NULLS FIRST
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: cron_fire
-- Fire one due time of a locked job and move it to its next time.
SELECT picloud.cron_fire(%(app_id)s, %(name)s, %(due_at)s, %(next_run_at)s) AS enqueued;

-- name: cron_schedule
-- Give a job without a due time (e.g. inserted from psql) its next time, without firing.
SELECT picloud.cron_schedule(%(app_id)s, %(name)s, %(next_run_at)s) AS scheduled;

-- name: cron_disable
-- Disable a job whose expression or time zone cannot be used, saying why.
SELECT picloud.cron_disable(%(app_id)s, %(name)s, %(error)s) AS disabled;

-- HTTP statements (web/cron.py), each named api_<handler>: picloud.authorize, then the
-- operation, in one statement (web/auth.py: credentials).

-- name: api_create_cron_job
-- Create a cron job (expression and timezone parsed, next_run_at computed by the caller).
SELECT j.name, j.expression, j.timezone, j.payload, j.enabled, j.next_run_at, j.last_run_at,
       j.last_error, j.created_at, j.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.create_cron_job(a.app, %(name)s, %(expression)s, %(timezone)s,
                                       %(payload)s, %(enabled)s, %(next_run_at)s) j;

-- name: api_list_cron_jobs
-- An app's cron jobs by name.
SELECT j.name, j.expression, j.timezone, j.payload, j.enabled, j.next_run_at, j.last_run_at,
       j.last_error, j.created_at, j.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.cron_jobs j WHERE j.app_id = a.app
                 ORDER BY j.name OFFSET 0) j
 ORDER BY j.name;

-- name: api_get_cron_job
-- One cron job (no row: none).
SELECT j.name, j.expression, j.timezone, j.payload, j.enabled, j.next_run_at, j.last_run_at,
       j.last_error, j.created_at, j.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.cron_jobs j WHERE j.app_id = a.app AND j.name = %(name)s
                 OFFSET 0) j;

-- name: api_update_cron_job
-- Change a cron job (NULL: unchanged) and set its next due time (NULL: the ticker's).
SELECT j.name, j.expression, j.timezone, j.payload, j.enabled, j.next_run_at, j.last_run_at,
       j.last_error, j.created_at, j.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.update_cron_job(a.app, %(name)s, %(expression)s, %(timezone)s,
                                       %(payload)s, %(enabled)s, %(next_run_at)s) j;

-- name: api_delete_cron_job
-- Delete a cron job (P0002 when there is none).
SELECT d.name
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.delete_cron_job(a.app, %(name)s) AS d(name);
