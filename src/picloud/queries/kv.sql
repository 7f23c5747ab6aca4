-- name: kv_get
-- One kv entry of an app (a malformed key is 22023).
SELECT key, value, created_at, updated_at FROM picloud.kv
 WHERE app_id = %(app_id)s AND key = picloud.check_kv_key(%(key)s);

-- name: kv_set
-- Create or replace a kv entry (validated in SQL); created tells which.
SELECT (entry).key, (entry).value, (entry).created_at, (entry).updated_at, created
  FROM picloud.kv_set(%(app_id)s, %(key)s, %(value)s);

-- name: kv_delete
-- Delete a kv entry (a malformed key is 22023); no row when it did not exist.
DELETE FROM picloud.kv WHERE app_id = %(app_id)s AND key = picloud.check_kv_key(%(key)s)
RETURNING key;

-- name: kv_list
-- A page of an app's entries in key order, after a cursor key, under an optional prefix.
SELECT key, value, created_at, updated_at FROM picloud.kv
 WHERE app_id = %(app_id)s
   AND key >= %(prefix)s AND starts_with(key, %(prefix)s)
   AND (%(cursor)s::text IS NULL OR key > %(cursor)s::text)
 ORDER BY key
 LIMIT %(limit)s;
