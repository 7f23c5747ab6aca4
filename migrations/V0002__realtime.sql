-- Realtime channels: topics, per-app signing keys for subscriber tokens, the message log.

CREATE TABLE picloud.topics (
    app_id                uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    name                  text        NOT NULL
                          CONSTRAINT topics_name_format CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    external_subscribable boolean     NOT NULL DEFAULT false,
    auth_mode             text        NOT NULL DEFAULT 'token'
                          CONSTRAINT topics_auth_mode CHECK (auth_mode IN ('public', 'token')),
    last_seq              bigint      NOT NULL DEFAULT 0 CONSTRAINT topics_last_seq_nonneg CHECK (last_seq >= 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, name)
);
COMMENT ON TABLE picloud.topics IS 'Pub/sub topics of an app. external_subscribable opens a topic to SSE subscribers (auth_mode public: anyone; token: a subscriber token). last_seq is the per-topic message counter: picloud.publish increments it under the row lock, so sequence numbers are gap-free in commit order.';
COMMENT ON COLUMN picloud.topics.last_seq IS 'Sequence number of the last message published to this topic (0: none yet).';

CREATE TABLE picloud.app_secrets (
    app_id               uuid        PRIMARY KEY REFERENCES picloud.apps (id) ON DELETE CASCADE,
    signing_key          bytea       NOT NULL CONSTRAINT app_secrets_key_length CHECK (length(signing_key) = 32),
    key_version          integer     NOT NULL DEFAULT 1 CONSTRAINT app_secrets_key_version_positive CHECK (key_version > 0),
    previous_key         bytea       CONSTRAINT app_secrets_previous_key_length CHECK (length(previous_key) = 32),
    previous_valid_until timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    rotated_at           timestamptz
);
COMMENT ON TABLE picloud.app_secrets IS 'Per-app HMAC-SHA256 key that signs subscriber tokens; created lazily by the first picloud.subscriber_token. After picloud.rotate_app_secret the previous key (version key_version - 1) stays valid until previous_valid_until.';

CREATE TABLE picloud.messages (
    app_id       uuid        NOT NULL,
    topic        text        NOT NULL,
    seq          bigint      NOT NULL CONSTRAINT messages_seq_positive CHECK (seq > 0),
    message      jsonb       NOT NULL,
    published_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (app_id, topic, seq),
    FOREIGN KEY (app_id, topic) REFERENCES picloud.topics (app_id, name) ON DELETE CASCADE
);
-- Retention pruning scans by time; published_at grows with insertion order, so BRIN is enough.
CREATE INDEX messages_published_at_brin ON picloud.messages USING brin (published_at);
COMMENT ON TABLE picloud.messages IS 'The durable pub/sub log, written by picloud.publish: per-topic sequence numbers (the SSE event ids), gap-free in commit order. Source of SSE replay (Last-Event-ID); pruned after PICLOUD_REALTIME_RETENTION_SEC by picloud.prune_messages.';
