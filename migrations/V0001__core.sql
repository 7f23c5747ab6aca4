-- Core tenancy: apps, their host names and API keys.
CREATE SCHEMA IF NOT EXISTS picloud;
COMMENT ON SCHEMA picloud IS 'PiCloud: apps, realtime topics, outbox, data sources. Functions here are the public surface.';

CREATE TABLE picloud.apps (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text        NOT NULL UNIQUE
               CONSTRAINT apps_slug_format CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name       text        NOT NULL
               CONSTRAINT apps_name_length CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE picloud.apps IS 'Tenants. Every other table hangs off an app and cascades on its deletion.';

CREATE TABLE picloud.app_domains (
    app_id     uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    host       text        NOT NULL UNIQUE
               CONSTRAINT app_domains_host_format
               CHECK (host = lower(host) AND host ~ '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, host)
);
COMMENT ON TABLE picloud.app_domains IS 'Custom host names of an app (lower case, no port), looked up first by picloud.resolve_app.';

CREATE TABLE picloud.api_keys (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id       uuid        REFERENCES picloud.apps (id) ON DELETE CASCADE,
    name         text        NOT NULL CONSTRAINT api_keys_name_length CHECK (length(name) BETWEEN 1 AND 200),
    key_hash     bytea       NOT NULL UNIQUE,
    key_prefix   text        NOT NULL,
    capabilities text[]      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_capabilities_known CHECK (capabilities <@ ARRAY[
        'instance:admin', 'app:admin', 'topics:manage', 'topics:publish', 'tokens:mint',
        'kv:read', 'kv:write', 'docs:read', 'docs:write', 'files:read', 'files:write',
        'triggers:manage', 'deliveries:read', 'dead_letters:manage']::text[]),
    CONSTRAINT api_keys_instance_admin_unscoped
        CHECK (NOT ('instance:admin' = ANY (capabilities)) OR app_id IS NULL),
    CONSTRAINT api_keys_app_caps_scoped
        CHECK (app_id IS NOT NULL OR capabilities = ARRAY['instance:admin']::text[])
);
CREATE INDEX api_keys_app_id_idx ON picloud.api_keys (app_id);
COMMENT ON TABLE picloud.api_keys IS 'API keys: only the SHA-256 of the key is stored; the key itself is shown once at creation. app_id NULL means an instance-level key.';
