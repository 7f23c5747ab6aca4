-- API keys: creation (the key is returned once) and authentication by hash.

CREATE OR REPLACE FUNCTION picloud.known_capabilities() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['instance:admin', 'app:admin', 'topics:manage', 'topics:publish', 'tokens:mint',
                 'kv:read', 'kv:write', 'docs:read', 'docs:write', 'files:read', 'files:write',
                 'triggers:manage', 'deliveries:read', 'dead_letters:manage']::text[]
$$;
COMMENT ON FUNCTION picloud.known_capabilities() IS 'Every capability an API key may carry.';

CREATE OR REPLACE FUNCTION picloud.create_api_key(
    app_id uuid, name text, capabilities text[], expires_at timestamptz DEFAULT NULL)
RETURNS TABLE (id uuid, key text, key_prefix text, created_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_unknown text[];
    v_key     text := 'pck_' || encode(picloud.random_bytes_32(), 'hex');
BEGIN
    IF create_api_key.capabilities IS NULL OR cardinality(create_api_key.capabilities) = 0 THEN
        RAISE EXCEPTION 'capabilities must be a non-empty list' USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(c) INTO v_unknown
      FROM unnest(create_api_key.capabilities) c
     WHERE c IS NULL OR NOT c = ANY (picloud.known_capabilities());
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown capabilities: %', array_to_string(v_unknown, ', ', 'null')
            USING ERRCODE = '22023';
    END IF;
    IF create_api_key.app_id IS NULL
       AND create_api_key.capabilities <> ARRAY['instance:admin']::text[] THEN
        RAISE EXCEPTION 'an instance-level key carries exactly instance:admin' USING ERRCODE = '22023';
    END IF;
    IF create_api_key.app_id IS NOT NULL AND 'instance:admin' = ANY (create_api_key.capabilities) THEN
        RAISE EXCEPTION 'instance:admin cannot be bound to an app' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    INSERT INTO picloud.api_keys AS k (app_id, name, key_hash, key_prefix, capabilities, expires_at)
    VALUES (create_api_key.app_id, create_api_key.name, sha256(convert_to(v_key, 'UTF8')),
            left(v_key, 8),
            ARRAY(SELECT DISTINCT c FROM unnest(create_api_key.capabilities) c ORDER BY c),
            create_api_key.expires_at)
    RETURNING k.id, v_key, k.key_prefix, k.created_at;
END
$$;
COMMENT ON FUNCTION picloud.create_api_key(uuid, text, text[], timestamptz) IS
    'Create an API key; returns the key itself, which is never stored (only its SHA-256). app_id NULL: instance key.';

CREATE OR REPLACE FUNCTION picloud.authenticate_key(key text)
RETURNS TABLE (id uuid, app_id uuid, capabilities text[])
LANGUAGE sql STABLE AS $$
    SELECT k.id, k.app_id, k.capabilities
      FROM picloud.api_keys k
     WHERE k.key_hash = sha256(convert_to(authenticate_key.key, 'UTF8'))
       AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at > now())
$$;
COMMENT ON FUNCTION picloud.authenticate_key(text) IS
    'The live (unrevoked, unexpired) key with this secret: its id, app and capabilities; no row otherwise.';

CREATE OR REPLACE FUNCTION picloud.ensure_admin_key(key text, name text DEFAULT 'bootstrap')
RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    -- Registers a key chosen by the operator (PICLOUD_ADMIN_KEY) as an instance admin key.
    INSERT INTO picloud.api_keys (app_id, name, key_hash, key_prefix, capabilities)
    VALUES (NULL, ensure_admin_key.name, sha256(convert_to(ensure_admin_key.key, 'UTF8')),
            left(ensure_admin_key.key, 8), ARRAY['instance:admin'])
    ON CONFLICT (key_hash) DO UPDATE
        SET app_id = NULL, revoked_at = NULL, expires_at = NULL, capabilities = ARRAY['instance:admin']
    RETURNING id
$$;
COMMENT ON FUNCTION picloud.ensure_admin_key(text, text) IS
    'Make the given key a live instance:admin key (idempotent). Used for PICLOUD_ADMIN_KEY.';

CREATE OR REPLACE FUNCTION picloud.capabilities_allow(
    capabilities text[], key_app_id uuid, app_id uuid, capability text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce('instance:admin' = ANY (capabilities_allow.capabilities)
                    OR (capabilities_allow.capability <> 'instance:admin'
                        AND capabilities_allow.key_app_id = capabilities_allow.app_id
                        AND ('app:admin' = ANY (capabilities_allow.capabilities)
                             OR capabilities_allow.capability = ANY (capabilities_allow.capabilities))),
                    false)
$$;
COMMENT ON FUNCTION picloud.capabilities_allow(text[], uuid, uuid, text) IS
    'The capability rule: may a key (its capabilities and app) do capability on app_id? instance:admin may do all, app:admin all of its own app, any other capability only on its own app.';

CREATE OR REPLACE FUNCTION picloud.key_allows(key_id uuid, app_id uuid, capability text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT picloud.capabilities_allow(k.capabilities, k.app_id, key_allows.app_id,
                                                       key_allows.capability)
                       FROM picloud.api_keys k WHERE k.id = key_allows.key_id), false)
$$;
COMMENT ON FUNCTION picloud.key_allows(uuid, uuid, text) IS
    'picloud.capabilities_allow for a key by id (false for an unknown one): a second capability an action needs beside the one picloud.authorize checked.';

CREATE OR REPLACE FUNCTION picloud.authorize(key text, app_id uuid, capability text)
RETURNS TABLE (app uuid, slug text, key_id uuid, instance_admin boolean)
LANGUAGE plpgsql STABLE AS $$
-- The gate of every HTTP request, in the same statement as the operation it guards:
--   SELECT … FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
--        LATERAL picloud.<operation>(a.app, …)
-- 28000 (no live key) -> 401, P0002 (no such app) -> 404, 42501 (capability missing) -> 403,
-- checked in that order. app_id NULL asks for an instance-level action (instance:admin).
DECLARE
    v_key  record;
    v_slug text;
BEGIN
    SELECT k.id, k.app_id, k.capabilities INTO v_key
      FROM picloud.authenticate_key(authorize.key) k;
    IF authorize.key IS NULL OR NOT FOUND THEN
        RAISE EXCEPTION 'missing or invalid API key' USING ERRCODE = '28000';
    END IF;
    IF authorize.app_id IS NOT NULL THEN
        SELECT a.slug INTO v_slug FROM picloud.apps a WHERE a.id = authorize.app_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such app' USING ERRCODE = 'P0002';
        END IF;
    END IF;
    IF NOT picloud.capabilities_allow(v_key.capabilities, v_key.app_id, authorize.app_id,
                                      authorize.capability) THEN
        RAISE EXCEPTION 'this key lacks the capability for this action' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY SELECT authorize.app_id, v_slug, v_key.id,
                        'instance:admin' = ANY (v_key.capabilities);
END
$$;
COMMENT ON FUNCTION picloud.authorize(text, uuid, text) IS
    'The API-key check of one request: the key is live (else 28000), the app exists (else P0002) and the key holds the capability on it (else 42501; instance:admin holds all, app:admin all of its app). One row: app id and slug, key id, whether the key is an instance admin.';

CREATE OR REPLACE FUNCTION picloud.revoke_api_key(app_id uuid, key_id uuid)
RETURNS TABLE (id uuid, name text, key_prefix text, capabilities text[], created_at timestamptz,
               expires_at timestamptz, revoked_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    UPDATE picloud.api_keys k SET revoked_at = coalesce(k.revoked_at, now())
     WHERE k.app_id = revoke_api_key.app_id AND k.id = revoke_api_key.key_id
    RETURNING k.id, k.name, k.key_prefix, k.capabilities, k.created_at, k.expires_at, k.revoked_at;
END
$$;
COMMENT ON FUNCTION picloud.revoke_api_key(uuid, uuid) IS
    'Revoke a key of an app (idempotent: the first revocation time is kept): the key without its secret, or no row when the app has no such key.';
