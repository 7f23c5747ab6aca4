-- name: doc_get
-- One document.
SELECT collection, id, data, version, created_at, updated_at FROM picloud.docs
 WHERE app_id = %(app_id)s AND collection = %(collection)s AND id = %(id)s;

-- name: doc_create
-- Insert a new document (id NULL: generated); validated in SQL.
SELECT collection, id, data, version, created_at, updated_at
  FROM picloud.doc_create(%(app_id)s, %(collection)s, %(id)s, %(data)s);

-- name: doc_put
-- Create or replace a document, optionally only at an expected version (PC409 otherwise).
SELECT (doc).collection, (doc).id, (doc).data, (doc).version, (doc).created_at,
       (doc).updated_at, created
  FROM picloud.doc_put(%(app_id)s, %(collection)s, %(id)s, %(data)s, %(if_version)s);

-- name: doc_delete
-- Delete a document, optionally only at an expected version; returns the deleted version.
SELECT picloud.doc_delete(%(app_id)s, %(collection)s, %(id)s, %(if_version)s) AS version;

-- name: doc_list
-- A page of a collection's documents in id order, after a cursor id.
SELECT collection, id, data, version, created_at, updated_at FROM picloud.docs
 WHERE app_id = %(app_id)s AND collection = %(collection)s
   AND (%(cursor)s::text IS NULL OR id > %(cursor)s::text)
 ORDER BY id
 LIMIT %(limit)s;

-- name: check_doc_ref
-- Validate a collection name and optional document id (22023 naming the problem).
SELECT picloud.check_doc_ref(%(collection)s, %(id)s);
