-- name: create_api_key
-- Create a key; the clear key is in the result and nowhere else.
SELECT id, key, key_prefix, created_at
  FROM picloud.create_api_key(%(app_id)s, %(name)s, %(capabilities)s, %(expires_at)s);

-- name: authenticate_key
-- The live key with this secret, if any.
SELECT id, app_id, capabilities FROM picloud.authenticate_key(%(key)s);

-- name: list_api_keys
-- An app's keys, without secrets.
SELECT id, name, key_prefix, capabilities, created_at, expires_at, revoked_at
  FROM picloud.api_keys WHERE app_id = %(app_id)s ORDER BY created_at, id;

-- name: revoke_api_key
-- Revoke a key of an app (idempotent: the first revocation time is kept).
UPDATE picloud.api_keys SET revoked_at = coalesce(revoked_at, now())
 WHERE app_id = %(app_id)s AND id = %(key_id)s
RETURNING id, name, key_prefix, capabilities, created_at, expires_at, revoked_at;

-- name: ensure_admin_key
-- Register the operator's chosen admin key.
SELECT picloud.ensure_admin_key(%(key)s) AS id;

-- name: count_instance_admin_keys
-- How many live instance:admin keys exist.
SELECT count(*) AS n FROM picloud.api_keys
 WHERE app_id IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now());
