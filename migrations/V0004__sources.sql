-- Data sources: key-value entries, document collections, file metadata and cron jobs.
-- Their changes fan out to triggers through row triggers defined in sql/50..53.

CREATE TABLE picloud.kv (
    app_id     uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    key        text        COLLATE "C" NOT NULL
               CONSTRAINT kv_key_format CHECK (key ~ '^[A-Za-z0-9_.:/@=+-]+$' AND length(key) <= 256),
    value      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, key)
);
COMMENT ON TABLE picloud.kv IS
    'Key-value entries of an app (any JSON value). INSERT/UPDATE/DELETE fan out as kv set/delete events to the app''s kv triggers, from the API or from psql alike.';

CREATE TABLE picloud.docs (
    app_id     uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    collection text        COLLATE "C" NOT NULL
               CONSTRAINT docs_collection_format CHECK (collection ~ '^[A-Za-z0-9_.-]{1,128}$'),
    id         text        COLLATE "C" NOT NULL
               CONSTRAINT docs_id_format CHECK (id ~ '^[A-Za-z0-9_.:@=+-]+$' AND length(id) <= 256),
    data       jsonb       NOT NULL CONSTRAINT docs_data_object CHECK (jsonb_typeof(data) = 'object'),
    version    bigint      NOT NULL DEFAULT 1 CONSTRAINT docs_version_positive CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, collection, id)
);
COMMENT ON TABLE picloud.docs IS
    'JSON documents (objects) in named collections of an app. version starts at 1 and grows by one on every update (optimistic concurrency); changes fan out as docs insert/update/delete events.';

CREATE TABLE picloud.files (
    app_id       uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    path         text        COLLATE "C" NOT NULL
                 CONSTRAINT files_path_format CHECK (
                     length(path) BETWEEN 1 AND 1024
                     AND left(path, 1) <> '/' AND right(path, 1) <> '/'
                     AND position('//' IN path) = 0
                     AND path !~ '(^|/)\.\.?(/|$)'
                     AND path !~ '[[:cntrl:]\\]'),
    size         bigint      NOT NULL CONSTRAINT files_size_nonnegative CHECK (size >= 0),
    sha256       text        NOT NULL CONSTRAINT files_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type text        NOT NULL DEFAULT 'application/octet-stream'
                 CONSTRAINT files_content_type_length CHECK (length(content_type) BETWEEN 1 AND 255),
    blob         text        NOT NULL CONSTRAINT files_blob_format CHECK (blob ~ '^[0-9a-f]{32}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, path)
);
COMMENT ON TABLE picloud.files IS
    'File metadata of an app. The bytes live on disk under PICLOUD_FILES_ROOT/<app_id>/<blob[0:2]>/<blob>; a row is committed only after its blob is durably in place, so every visible row has complete content. Changes fan out as files put/delete events.';

CREATE TABLE picloud.cron_jobs (
    app_id      uuid        NOT NULL REFERENCES picloud.apps (id) ON DELETE CASCADE,
    name        text        COLLATE "C" NOT NULL
                CONSTRAINT cron_jobs_name_format CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    expression  text        NOT NULL
                CONSTRAINT cron_jobs_expression_fields
                CHECK (array_length(regexp_split_to_array(btrim(expression), '\s+'), 1) = 5),
    timezone    text        NOT NULL DEFAULT 'UTC',
    payload     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled     boolean     NOT NULL DEFAULT true,
    next_run_at timestamptz,
    last_run_at timestamptz,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, name)
);
CREATE INDEX cron_jobs_due_idx ON picloud.cron_jobs (next_run_at) WHERE enabled;
COMMENT ON TABLE picloud.cron_jobs IS
    'Five-field cron schedules of an app, evaluated in their time zone. The cron ticker fires each due time once cluster-wide as a cron event (subject = job name) and moves next_run_at past now; NULL next_run_at is computed by the next tick without firing.';
