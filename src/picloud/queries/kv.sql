-- Every kv statement starts with picloud.authorize (web/auth.py: credentials), so one
-- statement checks the key and acts.

-- name: kv_get
-- One kv entry of an app (a malformed key is 22023).
SELECT e.key, e.value, e.created_at, e.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.kv_get(a.app, %(key)s) e;

-- name: kv_set
-- Create or replace a kv entry (validated in SQL); created tells which.
SELECT (s.entry).key, (s.entry).value, (s.entry).created_at, (s.entry).updated_at, s.created
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.kv_set(a.app, %(key)s, %(value)s) s;

-- name: kv_delete
-- Delete a kv entry (a malformed key is 22023); no row when it did not exist.
SELECT d.key
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.kv_delete(a.app, %(key)s) AS d(key);

-- name: kv_list
-- A page of an app's entries in key order, after a cursor key, under an optional prefix.
SELECT e.key, e.value, e.created_at, e.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.kv_list(a.app, %(prefix)s, %(cursor)s, %(limit)s) e;

-- The CLI's statements: the database's own caller, no API key (the same kv functions).

-- name: cli_kv_get
-- One kv entry of an app (a malformed key is 22023).
SELECT e.key, e.value, e.created_at, e.updated_at FROM picloud.kv_get(%(app_id)s, %(key)s) e;

-- name: cli_kv_set
-- Create or replace a kv entry (validated in SQL); created tells which.
SELECT (s.entry).key, (s.entry).value, (s.entry).created_at, (s.entry).updated_at, s.created
  FROM picloud.kv_set(%(app_id)s, %(key)s, %(value)s) s;

-- name: cli_kv_delete
-- Delete a kv entry (a malformed key is 22023); no row when it did not exist.
SELECT d.key FROM picloud.kv_delete(%(app_id)s, %(key)s) AS d(key);

-- name: cli_kv_list
-- A page of an app's entries in key order, after a cursor key, under an optional prefix.
SELECT e.key, e.value, e.created_at, e.updated_at
  FROM picloud.kv_list(%(app_id)s, %(prefix)s, %(cursor)s, %(limit)s) e;
