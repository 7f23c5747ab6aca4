-- Apps and their host names. The ``_as`` forms are the HTTP statements: they start with
-- picloud.authorize (web/auth.py: credentials), so one statement checks the key and acts;
-- the plain forms are the command line's (the operator, on the database itself). Both
-- write through the same picloud.* functions. A read joins its table as LATERAL
-- (… OFFSET 0) on the authorize row, so it runs only after the key was checked (a plain
-- join may scan an empty table first and never call authorize).

-- name: create_app
-- Create an app (the table's constraints check the slug and name).
SELECT id, slug, name, created_at, updated_at FROM picloud.create_app(%(slug)s, %(name)s);

-- name: create_app_as
-- Create an app for an instance admin key (the lateral reference to a runs it after the
-- key check).
SELECT n.id, n.slug, n.name, n.created_at, n.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.create_app(%(slug)s, %(name)s)
                 WHERE a.key_id IS NOT NULL OFFSET 0) n;

-- name: list_apps
-- Every app, oldest first.
SELECT id, slug, name, created_at, updated_at FROM picloud.apps ORDER BY created_at, id;

-- name: list_apps_as
-- Every app, oldest first, for an instance admin key.
SELECT p.id, p.slug, p.name, p.created_at, p.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.apps WHERE a.key_id IS NOT NULL OFFSET 0) p
 ORDER BY p.created_at, p.id;

-- name: get_app
-- One app by id.
SELECT id, slug, name, created_at, updated_at FROM picloud.apps WHERE id = %(app_id)s;

-- name: get_app_as
-- One app by id, for a key that may administer it.
SELECT p.id, p.slug, p.name, p.created_at, p.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.apps WHERE id = a.app OFFSET 0) p;

-- name: get_app_by_slug
-- One app by slug.
SELECT id, slug, name, created_at, updated_at FROM picloud.apps WHERE slug = %(slug)s;

-- name: update_app_as
-- Change an app's name and/or slug (NULL leaves a field as it is).
SELECT u.id, u.slug, u.name, u.created_at, u.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.update_app(a.app, %(slug)s, %(name)s) u;

-- name: delete_app
-- Delete an app and, by cascade, everything it owns.
SELECT d.id FROM picloud.delete_app(%(app_id)s) AS d(id);

-- name: delete_app_as
-- Delete an app and everything it owns, for an instance admin key.
SELECT d.id
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.delete_app(a.app) AS d(id);

-- name: add_domain
-- Attach a host name to an app as the operator (the rules of picloud.add_domain apply).
SELECT host, app_id, created_at FROM picloud.add_domain(%(app_id)s, %(host)s, true);

-- name: add_domain_as
-- Attach a host name to an app for an API key; reserved names need an instance admin key.
SELECT d.host, d.app_id, d.created_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.add_domain(a.app, %(host)s, a.instance_admin) d;

-- name: list_domains
-- An app's host names.
SELECT host, app_id, created_at FROM picloud.app_domains WHERE app_id = %(app_id)s ORDER BY host;

-- name: list_domains_as
-- An app's host names, for a key that may administer it.
SELECT d.host, d.app_id, d.created_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.app_domains WHERE app_id = a.app OFFSET 0) d
 ORDER BY d.host;

-- name: remove_domain
-- Detach a host name from an app; no row when the app did not have it.
SELECT r.host FROM picloud.remove_domain(%(app_id)s, %(host)s) AS r(host);

-- name: remove_domain_as
-- Detach a host name from an app, for a key that may administer it.
SELECT r.host
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.remove_domain(a.app, %(host)s) AS r(host);
