-- API keys. The ``_as`` forms are the HTTP statements (they start with picloud.authorize);
-- the plain forms are the command line's. Both write through the same picloud.* functions.
-- A read joins its table as LATERAL (… OFFSET 0) on the authorize row, so it runs only
-- after the key was checked (a plain join may scan an empty table first and never call
-- authorize).

-- name: create_api_key
-- Create a key; the clear key is in the result and nowhere else.
SELECT id, key, key_prefix, created_at
  FROM picloud.create_api_key(%(app_id)s, %(name)s, %(capabilities)s, %(expires_at)s);

-- name: create_api_key_as
-- Create a key of an app for a key that may administer it; the clear key is in the result
-- and nowhere else.
SELECT k.id, k.key, k.key_prefix, k.created_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.create_api_key(a.app, %(name)s, %(capabilities)s, NULL) k;

-- name: list_api_keys
-- An app's keys, without secrets.
SELECT id, name, key_prefix, capabilities, created_at, expires_at, revoked_at
  FROM picloud.api_keys WHERE app_id = %(app_id)s ORDER BY created_at, id;

-- name: list_api_keys_as
-- An app's keys, without secrets, for a key that may administer it.
SELECT k.id, k.name, k.key_prefix, k.capabilities, k.created_at, k.expires_at, k.revoked_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.api_keys WHERE app_id = a.app OFFSET 0) k
 ORDER BY k.created_at, k.id;

-- name: revoke_api_key
-- Revoke a key of an app (idempotent: the first revocation time is kept).
SELECT id, name, key_prefix, capabilities, created_at, expires_at, revoked_at
  FROM picloud.revoke_api_key(%(app_id)s, %(key_id)s);

-- name: revoke_api_key_as
-- Revoke a key of an app, for a key that may administer it.
SELECT r.id, r.name, r.key_prefix, r.capabilities, r.created_at, r.expires_at, r.revoked_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.revoke_api_key(a.app, %(key_id)s) r;

-- name: ensure_admin_key
-- Register the operator's chosen admin key.
SELECT picloud.ensure_admin_key(%(key)s) AS id;

-- name: count_instance_admin_keys
-- How many live instance:admin keys exist.
SELECT count(*) AS n FROM picloud.api_keys
 WHERE app_id IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now());
