-- Idempotent and bulk redrive of dead letters (sql/42_dead_letters.sql).
-- retry_dead_letter gains a force flag: the one-argument version goes.
DROP FUNCTION IF EXISTS picloud.retry_dead_letter(bigint);

-- Bulk redrive walks an app's not-yet-retried dead letters in id order, batch by batch.
CREATE INDEX dead_letters_unretried_idx ON picloud.dead_letters (app_id, id)
    WHERE retried_at IS NULL;
