-- name: create_app
-- Insert an app; the slug and name are checked by the table's constraints.
INSERT INTO picloud.apps (slug, name) VALUES (%(slug)s, %(name)s)
RETURNING id, slug, name, created_at, updated_at;

-- name: list_apps
-- Every app, oldest first.
SELECT id, slug, name, created_at, updated_at FROM picloud.apps ORDER BY created_at, id;

-- name: get_app
-- One app by id.
SELECT id, slug, name, created_at, updated_at FROM picloud.apps WHERE id = %(app_id)s;

-- name: get_app_by_slug
-- One app by slug.
SELECT id, slug, name, created_at, updated_at FROM picloud.apps WHERE slug = %(slug)s;

-- name: update_app
-- Change an app's name and/or slug; NULL leaves a field as it is.
UPDATE picloud.apps
   SET name = coalesce(%(name)s, name), slug = coalesce(%(slug)s, slug), updated_at = now()
 WHERE id = %(app_id)s
RETURNING id, slug, name, created_at, updated_at;

-- name: delete_app
-- Delete an app and, by cascade, everything it owns.
DELETE FROM picloud.apps WHERE id = %(app_id)s RETURNING id;

-- name: add_domain
-- Attach a host name to an app as the operator (the rules of picloud.add_domain apply).
SELECT host, app_id, created_at FROM picloud.add_domain(%(app_id)s, %(host)s, true);

-- name: add_domain_as
-- Attach a host name to an app for an API key; reserved names need instance_admin.
SELECT host, app_id, created_at FROM picloud.add_domain(%(app_id)s, %(host)s, %(instance_admin)s);

-- name: list_domains
-- An app's host names.
SELECT host, app_id, created_at FROM picloud.app_domains WHERE app_id = %(app_id)s ORDER BY host;

-- name: delete_domain
-- Detach a host name from an app.
DELETE FROM picloud.app_domains
 WHERE app_id = %(app_id)s AND host = picloud.normalize_host(%(host)s) RETURNING host;
