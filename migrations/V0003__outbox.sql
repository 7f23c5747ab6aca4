-- The outbox: handlers, triggers, deliveries (with per-attempt records) and dead letters.

CREATE TABLE picloud.handlers (
    app_id     uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    name       text        NOT NULL
               CONSTRAINT handlers_name_format CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    kind       text        NOT NULL CONSTRAINT handlers_kind_known CHECK (kind IN ('webhook', 'sql')),
    url        text        CONSTRAINT handlers_url_format
                           CHECK (url ~ '^https?://[^[:space:]]+$' AND length(url) <= 2048),
    secret     text        CONSTRAINT handlers_secret_length CHECK (length(secret) BETWEEN 16 AND 256),
    function   text        CONSTRAINT handlers_function_format
                           CHECK (function ~ '^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$'),
    timeout_ms integer     NOT NULL DEFAULT 10000
               CONSTRAINT handlers_timeout_range CHECK (timeout_ms BETWEEN 1 AND 300000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id),
    CONSTRAINT handlers_name_unique UNIQUE (app_id, name),
    CONSTRAINT handlers_kind_fields CHECK (
        (kind = 'webhook' AND url IS NOT NULL AND secret IS NOT NULL AND function IS NULL)
        OR (kind = 'sql' AND function IS NOT NULL AND url IS NULL AND secret IS NULL))
);
COMMENT ON TABLE picloud.handlers IS 'What a trigger runs: a webhook (url, signing secret, timeout) or an SQL function f(event jsonb) in one of PICLOUD_SQL_HANDLER_SCHEMAS (timeout = statement timeout).';

CREATE TABLE picloud.triggers (
    app_id       uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    name         text        NOT NULL
                 CONSTRAINT triggers_name_format CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    source       text        NOT NULL CONSTRAINT triggers_source_known
                 CHECK (source IN ('kv', 'docs', 'files', 'cron', 'pubsub', 'dead_letter')),
    filter       jsonb       NOT NULL DEFAULT '{}'
                 CONSTRAINT triggers_filter_object CHECK (jsonb_typeof(filter) = 'object'),
    handler_id   uuid        NOT NULL,
    max_attempts integer     NOT NULL DEFAULT 5
                 CONSTRAINT triggers_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id),
    CONSTRAINT triggers_name_unique UNIQUE (app_id, name),
    CONSTRAINT triggers_handler_fkey FOREIGN KEY (app_id, handler_id)
        REFERENCES picloud.handlers (app_id, id) ON DELETE RESTRICT
);
CREATE INDEX triggers_fanout_idx ON picloud.triggers (app_id, source) WHERE enabled;
CREATE INDEX triggers_handler_idx ON picloud.triggers (app_id, handler_id);
COMMENT ON TABLE picloud.triggers IS 'Run a handler when a source (kv, docs, files, cron, pubsub, dead_letter) changes. filter: {"match": "<subject glob, * = any run>", "types": ["<event type>", ...]}, both optional.';

CREATE TABLE picloud.deliveries (
    app_id           uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    trigger_id       uuid        NOT NULL,
    handler_id       uuid        NOT NULL,
    source           text        NOT NULL,
    subject          text        NOT NULL,
    event            jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CONSTRAINT deliveries_status_known
                     CHECK (status IN ('pending', 'running', 'done', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL CONSTRAINT deliveries_max_attempts_positive
                     CHECK (max_attempts >= 1),
    run_at           timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    retry_of         bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    PRIMARY KEY (app_id, id)
);
-- Claimable rows: pending and due; running ones whose lease (run_at = lease expiry) ran out.
CREATE INDEX deliveries_pending_idx ON picloud.deliveries (run_at) WHERE status = 'pending';
CREATE INDEX deliveries_running_idx ON picloud.deliveries (run_at) WHERE status = 'running';
CREATE INDEX deliveries_id_idx ON picloud.deliveries (id);
CREATE INDEX deliveries_finished_idx ON picloud.deliveries (finished_at) WHERE status = 'done';
COMMENT ON TABLE picloud.deliveries IS 'The outbox: one row per (event, trigger). status pending -> running (leased to lease_owner until lease_expires_at; run_at is the lease expiry then) -> done | dead. attempts counts claims.';

CREATE TABLE picloud.delivery_attempts (
    app_id      uuid        NOT NULL,
    delivery_id bigint      NOT NULL,
    attempt     integer     NOT NULL,
    worker      text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text        CONSTRAINT delivery_attempts_outcome_known
                CHECK (outcome IN ('ok', 'error', 'lease_expired')),
    error       text,
    PRIMARY KEY (app_id, delivery_id, attempt),
    CONSTRAINT delivery_attempts_delivery_fkey FOREIGN KEY (app_id, delivery_id)
        REFERENCES picloud.deliveries (app_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE picloud.delivery_attempts IS 'One row per run of a delivery: when, by which worker, outcome (NULL while running; ok, error, lease_expired) and the error or HTTP status.';

CREATE TABLE picloud.dead_letters (
    app_id            uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    id                bigint      GENERATED ALWAYS AS IDENTITY,
    delivery_id       bigint      NOT NULL,
    trigger_id        uuid        NOT NULL,
    handler_id        uuid        NOT NULL,
    source            text        NOT NULL,
    subject           text        NOT NULL,
    event             jsonb       NOT NULL,
    attempts          integer     NOT NULL,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    retried_at        timestamptz,
    retry_delivery_id bigint,
    PRIMARY KEY (app_id, id)
);
CREATE INDEX dead_letters_id_idx ON picloud.dead_letters (id);
CREATE INDEX dead_letters_app_source_idx ON picloud.dead_letters (app_id, source, id);
COMMENT ON TABLE picloud.dead_letters IS 'Deliveries that failed max_attempts times. Inserting one fans out to the app''s dead_letter triggers (not for dead letters of dead_letter deliveries). picloud.retry_dead_letter re-enqueues one.';
