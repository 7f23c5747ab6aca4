-- name: listen_dispatch
-- Subscribe this (dedicated, autocommit) connection to the dispatcher's wake-up channel.
SELECT picloud.listen(picloud.dispatch_channel());

-- name: dispatch_committing
-- Whether some enqueue is still committing (it may have committed without a NOTIFY).
SELECT picloud.writers_committing('dispatch') AS busy;

-- name: claim_deliveries
-- Lease up to max due deliveries, with their handlers (outcome NULL).
SELECT id, app_id, trigger_id, handler_id, source, subject, event, attempt, max_attempts,
       lease_expires_at, handler_kind, url, secret, function, timeout_ms, outcome, error
  FROM picloud.claim_deliveries(%(worker)s, %(max)s, %(lease)s);

-- name: claim_and_run_deliveries
-- Claim, running SQL handlers on the spot, under a statement timeout of run_within_ms.
BEGIN;
SET LOCAL statement_timeout = %(run_within_ms)s;
SELECT id, app_id, trigger_id, handler_id, source, subject, event, attempt, max_attempts,
       lease_expires_at, handler_kind, url, secret, function, timeout_ms, outcome, error
  FROM picloud.claim_deliveries(%(worker)s, %(max)s, %(lease)s, %(run_within_ms)s,
                                %(max_leased)s);
COMMIT;

-- name: release_delivery
-- Give back a leased delivery whose handler did not finish (shutting down).
SELECT picloud.release_delivery(%(id)s, %(worker)s) AS ok;

-- name: next_delivery_due
-- Seconds until the next delivery becomes claimable (NULL when none is queued).
SELECT extract(epoch FROM picloud.next_delivery_due() - clock_timestamp())::float8 AS seconds;

-- name: prune_deliveries
-- Delete successful deliveries older than the retention.
SELECT picloud.prune_deliveries(%(older_than)s) AS pruned;

-- name: run_sql_deliveries
-- Run a batch of SQL handlers in one transaction under one statement timeout (ms).
BEGIN;
SET LOCAL statement_timeout = %(timeout_ms)s;
SELECT id, outcome, error FROM picloud.run_sql_deliveries(%(app_ids)s::uuid[], %(ids)s::bigint[], %(worker)s);
COMMIT;

-- name: finish_deliveries
-- Record many handler outcomes at once: done when the error is null, failed otherwise.
SELECT id, outcome
  FROM picloud.finish_deliveries(%(app_ids)s, %(ids)s, %(workers)s, %(errors)s);
