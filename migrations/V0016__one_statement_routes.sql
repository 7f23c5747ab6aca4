-- The trigger sources and delivery statuses are written once, here, as functions the
-- tables' CHECKs call (a versioned rule: changing either list is a migration). The
-- functions of sql/ validate against them and GET /api/v1/trigger-sources shows them.
CREATE OR REPLACE FUNCTION picloud.event_sources() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['kv', 'docs', 'files', 'cron', 'pubsub', 'dead_letter']::text[]
$$;
COMMENT ON FUNCTION picloud.event_sources() IS
    'The source kinds a trigger can listen to (the one list: CHECK triggers_source_known, enqueue_event, the routes and the dashboard read it).';

CREATE OR REPLACE FUNCTION picloud.delivery_statuses() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['pending', 'running', 'done', 'dead']::text[]
$$;
COMMENT ON FUNCTION picloud.delivery_statuses() IS
    'The states of a delivery, pending -> running -> done | dead (CHECK deliveries_status_known and the list filter read it).';

ALTER TABLE picloud.triggers DROP CONSTRAINT triggers_source_known;
ALTER TABLE picloud.triggers ADD CONSTRAINT triggers_source_known
    CHECK (source = ANY (picloud.event_sources()));
ALTER TABLE picloud.deliveries DROP CONSTRAINT deliveries_status_known;
ALTER TABLE picloud.deliveries ADD CONSTRAINT deliveries_status_known
    CHECK (status = ANY (picloud.delivery_statuses()));
