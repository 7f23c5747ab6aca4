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
