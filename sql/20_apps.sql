-- Apps and host resolution.

CREATE OR REPLACE FUNCTION picloud.base_domain() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT lower(coalesce(nullif(current_setting('picloud.base_domain', true), ''), 'localhost'))
$$;
COMMENT ON FUNCTION picloud.base_domain() IS
    'The base domain for <slug>.<base> host names: the session setting picloud.base_domain (the server sets it from PICLOUD_BASE_DOMAIN), else localhost.';

CREATE OR REPLACE FUNCTION picloud.normalize_host(host text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- Lower case, without a trailing port or a trailing dot. Bracketed IPv6 keeps its brackets.
    SELECT rtrim(regexp_replace(lower(btrim(normalize_host.host)), ':[0-9]*$', ''), '.')
$$;
COMMENT ON FUNCTION picloud.normalize_host(text) IS
    'Host header to host name: lower case, port and trailing dot removed.';

CREATE OR REPLACE FUNCTION picloud.resolve_app(host text) RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_host   text := picloud.normalize_host(resolve_app.host);
    v_suffix text := '.' || picloud.base_domain();
    v_app    uuid;
BEGIN
    IF v_host IS NULL OR v_host = '' THEN
        RETURN NULL;
    END IF;
    SELECT d.app_id INTO v_app FROM picloud.app_domains d WHERE d.host = v_host;
    IF FOUND THEN
        RETURN v_app;
    END IF;
    IF right(v_host, length(v_suffix)) = v_suffix THEN
        SELECT a.id INTO v_app FROM picloud.apps a
         WHERE a.slug = left(v_host, length(v_host) - length(v_suffix));
    END IF;
    RETURN v_app;
END
$$;
COMMENT ON FUNCTION picloud.resolve_app(text) IS
    'Host header -> app id, or NULL. Exact app_domains.host first, then <slug>.<base domain>; ports ignored, case-insensitive.';

CREATE OR REPLACE FUNCTION picloud.reserved_host(host text) RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    -- localhost (and under it), the base domain (and under it), and IP literals: names only
    -- an instance admin may map, because they overlap the slug hosts or the network itself.
    SELECT reserved_host.host = 'localhost'
        OR right(reserved_host.host, 10) = '.localhost'
        OR reserved_host.host = picloud.base_domain()
        OR right(reserved_host.host, length(picloud.base_domain()) + 1) = '.' || picloud.base_domain()
        -- A numeric (or 0x-hex) last label makes a browser parse the name as IPv4.
        OR reserved_host.host ~ '(^|\.)(0x[0-9a-f]*|[0-9]+)$'
        OR reserved_host.host ~ '[:\[\]]'
$$;
COMMENT ON FUNCTION picloud.reserved_host(text) IS
    'True for a normalised host an app key may not claim: localhost, the base domain or a name under either, an IP literal.';

CREATE OR REPLACE FUNCTION picloud.add_domain(
    app_id uuid, host text, instance_admin boolean DEFAULT false)
RETURNS SETOF picloud.app_domains
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_host   text := picloud.normalize_host(add_domain.host);
    v_suffix text := '.' || picloud.base_domain();
    v_label  text;
BEGIN
    IF v_host IS NULL OR v_host !~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'
       OR length(v_host) > 253 THEN
        RAISE EXCEPTION 'host must be a DNS name (letters, digits, hyphens; IDNA names in their xn-- form), without port or path'
            USING ERRCODE = '22023';
    END IF;
    IF picloud.reserved_host(v_host) AND NOT coalesce(add_domain.instance_admin, false) THEN
        RAISE EXCEPTION 'only an instance admin may map %: it is localhost, the base domain, under one of them, or an IP address', v_host
            USING ERRCODE = '42501';
    END IF;
    IF right(v_host, length(v_suffix)) = v_suffix THEN
        v_label := left(v_host, length(v_host) - length(v_suffix));
        IF EXISTS (SELECT 1 FROM picloud.apps a
                    WHERE a.slug = v_label AND a.id IS DISTINCT FROM add_domain.app_id) THEN
            RAISE EXCEPTION '% is the host of another app', v_host
                USING ERRCODE = '23505', CONSTRAINT = 'app_domains_slug_host';
        END IF;
    END IF;
    RETURN QUERY
    INSERT INTO picloud.app_domains AS d (app_id, host) VALUES (add_domain.app_id, v_host)
    RETURNING d.*;
END
$$;
COMMENT ON FUNCTION picloud.add_domain(uuid, text, boolean) IS
    'Attach a host (normalised: case, trailing dot, port) to an app. Reserved names (picloud.reserved_host) need instance_admin; <slug>.<base> of another app is never allowed (23505).';

CREATE OR REPLACE FUNCTION picloud.apps_slug_host_free() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The other half of add_domain's rule: an app may not take a slug whose
    -- <slug>.<base> another app already holds as a domain (it would resolve there first).
    IF EXISTS (SELECT 1 FROM picloud.app_domains d
                WHERE d.host = NEW.slug || '.' || picloud.base_domain() AND d.app_id <> NEW.id) THEN
        RAISE EXCEPTION '%.% is the host of another app', NEW.slug, picloud.base_domain()
            USING ERRCODE = '23505', CONSTRAINT = 'app_domains_slug_host';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION picloud.apps_slug_host_free() IS
    'Trigger: refuses a slug whose <slug>.<base domain> is already another app''s domain.';

CREATE OR REPLACE TRIGGER apps_slug_host_free
    BEFORE INSERT OR UPDATE OF slug ON picloud.apps
    FOR EACH ROW EXECUTE FUNCTION picloud.apps_slug_host_free();

CREATE OR REPLACE FUNCTION picloud.create_app(slug text, name text)
RETURNS SETOF picloud.apps
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    INSERT INTO picloud.apps AS a (slug, name) VALUES (create_app.slug, create_app.name)
    RETURNING a.*;
END
$$;
COMMENT ON FUNCTION picloud.create_app(text, text) IS
    'Create an app; the table''s constraints check the slug and name (23514), 23505 when the slug is taken (or is another app''s host).';

CREATE OR REPLACE FUNCTION picloud.update_app(app_id uuid, slug text, name text)
RETURNS SETOF picloud.apps
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    UPDATE picloud.apps AS a
       SET name = coalesce(update_app.name, a.name), slug = coalesce(update_app.slug, a.slug),
           updated_at = now()
     WHERE a.id = update_app.app_id
    RETURNING a.*;
END
$$;
COMMENT ON FUNCTION picloud.update_app(uuid, text, text) IS
    'Change an app''s slug and/or name (NULL keeps a field), under the table''s constraints; no row for an unknown app.';

CREATE OR REPLACE FUNCTION picloud.delete_app(app_id uuid) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY DELETE FROM picloud.apps a WHERE a.id = delete_app.app_id RETURNING a.id;
END
$$;
COMMENT ON FUNCTION picloud.delete_app(uuid) IS
    'Delete an app and, by cascade, everything it owns: its id, or no row for an unknown app.';

CREATE OR REPLACE FUNCTION picloud.remove_domain(app_id uuid, host text) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    DELETE FROM picloud.app_domains d
     WHERE d.app_id = remove_domain.app_id AND d.host = picloud.normalize_host(remove_domain.host)
    RETURNING d.host;
END
$$;
COMMENT ON FUNCTION picloud.remove_domain(uuid, text) IS
    'Detach a host name (normalised as by add_domain) from an app: the host, or no row when the app did not have it.';
