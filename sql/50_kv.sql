-- Key-value entries: validation, upsert, and the fan-out of set/delete events.

CREATE OR REPLACE FUNCTION picloud.check_kv_key(key text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF check_kv_key.key IS NULL OR check_kv_key.key !~ '^[A-Za-z0-9_.:/@=+-]+$'
       OR length(check_kv_key.key) > 256 THEN
        RAISE EXCEPTION 'invalid key %: keys are 1-256 characters of A-Z a-z 0-9 _ . : / @ = + -',
            coalesce(quote_literal(left(check_kv_key.key, 64)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN check_kv_key.key;
END
$$;
COMMENT ON FUNCTION picloud.check_kv_key(text) IS
    'The key when it is a valid kv key, else SQLSTATE 22023 with a message saying what keys may contain.';

CREATE OR REPLACE FUNCTION picloud.kv_set(app_id uuid, key text, value jsonb)
RETURNS TABLE (entry picloud.kv, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_entry   picloud.kv;
    v_created boolean;
BEGIN
    PERFORM picloud.check_kv_key(kv_set.key);
    IF kv_set.value IS NULL THEN
        RAISE EXCEPTION 'a value is required (JSON null is stored as null)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO picloud.kv AS k (app_id, key, value)
    VALUES (kv_set.app_id, kv_set.key, kv_set.value)
    ON CONFLICT ON CONSTRAINT kv_pkey
    DO UPDATE SET value = excluded.value
    RETURNING k.app_id, k.key, k.value, k.created_at, k.updated_at, (k.xmax = 0)
         INTO v_entry.app_id, v_entry.key, v_entry.value, v_entry.created_at,
              v_entry.updated_at, v_created;
    RETURN QUERY SELECT v_entry, v_created;
END
$$;
COMMENT ON FUNCTION picloud.kv_set(uuid, text, jsonb) IS
    'Create or replace a kv entry after validating the key; created is true for a new key. The kv row trigger enqueues the set event.';

CREATE OR REPLACE FUNCTION picloud.kv_get(app_id uuid, key text) RETURNS SETOF picloud.kv
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- PL/pgSQL, not an inlined SQL function: the key is checked when the function runs,
    -- after the picloud.authorize beside it in the statement, never at plan time.
    RETURN QUERY SELECT k.* FROM picloud.kv k
                  WHERE k.app_id = kv_get.app_id AND k.key = picloud.check_kv_key(kv_get.key);
END
$$;
COMMENT ON FUNCTION picloud.kv_get(uuid, text) IS
    'One kv entry (a malformed key is 22023), or no row.';

CREATE OR REPLACE FUNCTION picloud.kv_list(app_id uuid, prefix text, after_key text,
                                           page_size integer)
RETURNS SETOF picloud.kv
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY SELECT k.* FROM picloud.kv k
                  WHERE k.app_id = kv_list.app_id
                    AND k.key >= coalesce(kv_list.prefix, '')
                    AND starts_with(k.key, coalesce(kv_list.prefix, ''))
                    AND (kv_list.after_key IS NULL OR k.key > kv_list.after_key)
                  ORDER BY k.key
                  LIMIT kv_list.page_size;
END
$$;
COMMENT ON FUNCTION picloud.kv_list(uuid, text, text, integer) IS
    'A page of an app''s kv entries in key order, under a prefix (NULL or empty: all), after a cursor key (NULL: from the start).';

CREATE OR REPLACE FUNCTION picloud.kv_delete(app_id uuid, key text) RETURNS SETOF text
LANGUAGE sql VOLATILE AS $$
    DELETE FROM picloud.kv k
     WHERE k.app_id = kv_delete.app_id AND k.key = picloud.check_kv_key(kv_delete.key)
    RETURNING k.key
$$;
COMMENT ON FUNCTION picloud.kv_delete(uuid, text) IS
    'Delete a kv entry (a malformed key is 22023): its key, or no row when there was none. The kv row trigger enqueues the delete event.';

CREATE OR REPLACE FUNCTION picloud.sources_app_exists(app_id uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM picloud.apps a WHERE a.id = sources_app_exists.app_id)
$$;
COMMENT ON FUNCTION picloud.sources_app_exists(uuid) IS
    'Is there (still) such an app? Source fan-out triggers skip delete events of rows removed by the cascade of an app''s deletion.';

CREATE OR REPLACE FUNCTION picloud.sources_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION picloud.sources_touch() IS
    'BEFORE UPDATE on kv and files: stamps updated_at, so plain UPDATEs from psql keep it right.';

DROP TRIGGER IF EXISTS kv_touch ON picloud.kv;
CREATE TRIGGER kv_touch BEFORE UPDATE ON picloud.kv
    FOR EACH ROW EXECUTE FUNCTION picloud.sources_touch();

CREATE OR REPLACE FUNCTION picloud.kv_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND (OLD.app_id, OLD.key) IS DISTINCT FROM (NEW.app_id, NEW.key)) THEN
        IF picloud.sources_app_exists(OLD.app_id) THEN
            PERFORM picloud.enqueue_event(OLD.app_id, 'kv', OLD.key,
                jsonb_build_object('type', 'delete', 'key', OLD.key));
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM picloud.enqueue_event(NEW.app_id, 'kv', NEW.key,
            jsonb_build_object('type', 'set', 'key', NEW.key, 'value', NEW.value,
                               'updated_at', NEW.updated_at));
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.kv_fan_out() IS
    'AFTER INSERT/UPDATE/DELETE on kv: enqueues a kv event (subject = key) — {"type": "set", "key", "value", "updated_at"} or {"type": "delete", "key"}; a key renamed by UPDATE is a delete plus a set.';

DROP TRIGGER IF EXISTS kv_fan_out ON picloud.kv;
CREATE TRIGGER kv_fan_out AFTER INSERT OR UPDATE OR DELETE ON picloud.kv
    FOR EACH ROW EXECUTE FUNCTION picloud.kv_fan_out();
