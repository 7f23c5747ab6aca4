-- Operator views over the outbox.

CREATE OR REPLACE VIEW picloud.delivery_queue AS
SELECT d.app_id, d.status, count(*) AS depth,
       min(d.created_at) AS oldest_created_at,
       now() - min(d.created_at) AS oldest_age,
       min(d.run_at) FILTER (WHERE d.status IN ('pending', 'running')) AS next_run_at
  FROM picloud.deliveries d
 GROUP BY d.app_id, d.status;
COMMENT ON VIEW picloud.delivery_queue IS
    'Queue depth and age of the oldest delivery by app and status (pending, running, done, dead).';

CREATE OR REPLACE VIEW picloud.dead_letter_summary AS
SELECT dl.app_id, dl.source, count(*) AS total,
       count(*) FILTER (WHERE dl.retried_at IS NULL) AS not_retried,
       min(dl.created_at) AS oldest_at, max(dl.created_at) AS newest_at
  FROM picloud.dead_letters dl
 GROUP BY dl.app_id, dl.source;
COMMENT ON VIEW picloud.dead_letter_summary IS
    'Dead letters by app and source: how many, how many not retried yet, oldest and newest.';
