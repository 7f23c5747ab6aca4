-- name: file_get
-- One file's metadata (with the blob it points at).
SELECT path, size, sha256, content_type, blob, created_at, updated_at FROM picloud.files
 WHERE app_id = %(app_id)s AND path = %(path)s;

-- name: file_put
-- Create or replace a file's row for an already durable blob; old_blob is to be unlinked.
SELECT (file).path, (file).size, (file).sha256, (file).content_type, (file).blob,
       (file).created_at, (file).updated_at, old_blob
  FROM picloud.file_put(%(app_id)s, %(path)s, %(size)s, %(sha256)s, %(content_type)s,
                        %(blob)s);

-- name: file_delete
-- Delete a file's row (no row: none; 22023 for an invalid path); returns the blob to unlink
-- after commit.
SELECT path, blob FROM picloud.file_delete(%(app_id)s, %(path)s);

-- name: file_list
-- A page of an app's files in path order, after a cursor path, under an optional prefix.
SELECT path, size, sha256, content_type, created_at, updated_at FROM picloud.files
 WHERE app_id = %(app_id)s
   AND path >= %(prefix)s AND starts_with(path, %(prefix)s)
   AND (%(cursor)s::text IS NULL OR path > %(cursor)s::text)
 ORDER BY path
 LIMIT %(limit)s;

-- name: check_file_path
-- Validate a file path (22023 saying why it is refused).
SELECT picloud.check_file_path(%(path)s) AS path;

-- HTTP statements (web/files.py), each named api_<handler>: picloud.authorize, then the
-- operation, in one statement (web/auth.py: credentials).

-- name: api_list_files
-- A page of an app's files in path order, after a cursor path, under an optional prefix.
SELECT f.path, f.size, f.sha256, f.content_type, f.created_at, f.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.files f
                 WHERE f.app_id = a.app AND f.path >= %(prefix)s
                   AND starts_with(f.path, %(prefix)s)
                   AND (%(cursor)s::text IS NULL OR f.path > %(cursor)s::text)
                 ORDER BY f.path
                 LIMIT %(limit)s) f
 ORDER BY f.path;

-- name: api_get_file
-- One file's metadata with its blob (no row: none; 22023 for an invalid path).
SELECT a.app AS app_id, f.path, f.size, f.sha256, f.content_type, f.blob, f.created_at,
       f.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.file_get(a.app, %(path)s) f;

-- name: api_upload_path
-- The gate of an upload, before its body is read: the key, the app and the path (the row
-- is committed by file_put once the blob is durable).
SELECT a.app AS app_id, p.path
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.file_upload_path(a.app, %(path)s) AS p(path);

-- name: api_delete_file
-- Delete a file's row (no row: none); returns the blob to unlink after commit.
SELECT f.app_id, f.path, f.blob
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.file_delete(a.app, %(path)s) f;
