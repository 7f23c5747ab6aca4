-- Function signatures retired or changed, dropped once here rather than on every re-apply
-- of sql/ (which then creates the current ones).

-- Return types changed in earlier releases (CREATE OR REPLACE cannot change one).
DROP FUNCTION IF EXISTS picloud.create_api_key(uuid, text, text[], timestamptz);
DROP FUNCTION IF EXISTS picloud.authenticate_key(text);
DROP FUNCTION IF EXISTS picloud.create_topic(uuid, text, boolean, text);
DROP FUNCTION IF EXISTS picloud.app_signing_key(uuid);
DROP FUNCTION IF EXISTS picloud.publish_message(uuid, text, jsonb);
DROP FUNCTION IF EXISTS picloud.kv_set(uuid, text, jsonb);
DROP FUNCTION IF EXISTS picloud.doc_create(uuid, text, text, jsonb);
DROP FUNCTION IF EXISTS picloud.doc_put(uuid, text, text, jsonb, bigint);
DROP FUNCTION IF EXISTS picloud.file_put(uuid, text, bigint, text, text, text);
DROP FUNCTION IF EXISTS picloud.cron_fire(uuid, text, timestamptz, timestamptz);

-- The pub/sub fan-out was an AFTER INSERT trigger on messages; picloud.append_messages
-- calls picloud.fan_out_message itself now.
DROP TRIGGER IF EXISTS messages_fan_out ON picloud.messages;
DROP FUNCTION IF EXISTS picloud.messages_fan_out();

-- The dispatcher: one claim function (claim_deliveries, which can also run SQL handlers on
-- the spot), one batched SQL-handler path (run_sql_deliveries) and one completion function
-- (finish_deliveries).
DROP FUNCTION IF EXISTS picloud.claim_deliveries(text, integer, interval);
DROP FUNCTION IF EXISTS picloud.claim_and_run_deliveries(text, integer, interval, integer, integer);
DROP FUNCTION IF EXISTS picloud.check_claim(text, integer, interval);
DROP FUNCTION IF EXISTS picloud.lock_due_deliveries(integer);
DROP FUNCTION IF EXISTS picloud.run_sql_handler(text, jsonb);
DROP FUNCTION IF EXISTS picloud.run_sql_deliveries(bigint[], text);
DROP FUNCTION IF EXISTS picloud.run_sql_deliveries(uuid[], bigint[], text);
DROP FUNCTION IF EXISTS picloud.complete_delivery_or_raise(bigint, text);
DROP FUNCTION IF EXISTS picloud.complete_delivery(bigint, text);
DROP FUNCTION IF EXISTS picloud.complete_deliveries(bigint[], text[]);
DROP FUNCTION IF EXISTS picloud.complete_deliveries(uuid[], bigint[], text[]);
DROP FUNCTION IF EXISTS picloud.finish_deliveries(bigint[], text[], text[]);
DROP FUNCTION IF EXISTS picloud.finish_deliveries(uuid[], bigint[], text[], text[]);
DROP FUNCTION IF EXISTS picloud.fail_delivery(bigint, text, text);
DROP FUNCTION IF EXISTS picloud.release_delivery(bigint, text);
