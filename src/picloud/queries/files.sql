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
-- Delete a file's row; returns the blob to unlink after commit.
DELETE FROM picloud.files WHERE app_id = %(app_id)s AND path = %(path)s RETURNING path, blob;

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
