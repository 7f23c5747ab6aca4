-- name: doc_get
-- One document.
SELECT collection, id, data, version, created_at, updated_at FROM picloud.docs
 WHERE app_id = %(app_id)s AND collection = %(collection)s AND id = %(id)s;

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

-- HTTP statements (web/docs.py), each named api_<handler>: picloud.authorize, then the
-- operation, in one statement (web/auth.py: credentials).

-- name: api_list_docs
-- A page of a collection's documents in id order, after a cursor id.
SELECT d.collection, d.id, d.data, d.version, d.created_at, d.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.doc_list(a.app, %(collection)s, %(cursor)s, %(limit)s) d;

-- name: api_get_doc
-- One document (no row: none).
SELECT d.collection, d.id, d.data, d.version, d.created_at, d.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.doc_get(a.app, %(collection)s, %(id)s) d;

-- name: api_create_doc
-- Insert a new document with a generated id.
SELECT d.collection, d.id, d.data, d.version, d.created_at, d.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.doc_create(a.app, %(collection)s, NULL, %(data)s) d;

-- name: api_put_doc
-- Create or replace a document, optionally only at an expected version (PC409 otherwise).
SELECT (p.doc).collection, (p.doc).id, (p.doc).data, (p.doc).version, (p.doc).created_at,
       (p.doc).updated_at, p.created
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.doc_put(a.app, %(collection)s, %(id)s, %(data)s, %(if_version)s) p;

-- name: api_delete_doc
-- Delete a document (P0002 when missing), optionally only at an expected version.
SELECT d.version
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.doc_delete(a.app, %(collection)s, %(id)s, %(if_version)s) AS d(version);
