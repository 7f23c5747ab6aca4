-- Documents: validation, create/replace/delete with optimistic concurrency, fan-out.
-- A version mismatch raises SQLSTATE PC409 (version_conflict), which the HTTP layer
-- turns into 409.

CREATE OR REPLACE FUNCTION picloud.check_doc_ref(collection text, id text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF check_doc_ref.collection IS NULL
       OR check_doc_ref.collection !~ '^[A-Za-z0-9_.-]{1,128}$' THEN
        RAISE EXCEPTION 'invalid collection %: 1-128 characters of A-Z a-z 0-9 _ . -',
            coalesce(quote_literal(left(check_doc_ref.collection, 64)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF check_doc_ref.id IS NOT NULL AND (check_doc_ref.id !~ '^[A-Za-z0-9_.:@=+-]+$'
                                          OR length(check_doc_ref.id) > 256) THEN
        RAISE EXCEPTION 'invalid document id %: 1-256 characters of A-Z a-z 0-9 _ . : @ = + -',
            quote_literal(left(check_doc_ref.id, 64))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_doc_ref(text, text) IS
    'SQLSTATE 22023 naming the problem when a collection name or document id (NULL: none given) is invalid.';

CREATE OR REPLACE FUNCTION picloud.check_doc_data(data jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF check_doc_data.data IS NULL OR jsonb_typeof(check_doc_data.data) <> 'object' THEN
        RAISE EXCEPTION 'a document must be a JSON object, not %',
            coalesce(jsonb_typeof(check_doc_data.data), 'nothing')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION picloud.check_doc_data(jsonb) IS
    'SQLSTATE 22023 unless the document body is a JSON object.';

CREATE OR REPLACE FUNCTION picloud.doc_create(app_id uuid, collection text, id text, data jsonb)
RETURNS SETOF picloud.docs
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM picloud.check_doc_ref(doc_create.collection, doc_create.id);
    PERFORM picloud.check_doc_data(doc_create.data);
    RETURN QUERY
    INSERT INTO picloud.docs (app_id, collection, id, data)
    VALUES (doc_create.app_id, doc_create.collection,
            coalesce(doc_create.id, gen_random_uuid()::text), doc_create.data)
    RETURNING *;
END
$$;
COMMENT ON FUNCTION picloud.doc_create(uuid, text, text, jsonb) IS
    'Insert a new document at version 1 (id NULL: a random UUID); an existing id is a unique violation (409).';

CREATE OR REPLACE FUNCTION picloud.doc_put(app_id uuid, collection text, id text, data jsonb,
                                if_version bigint DEFAULT NULL)
RETURNS TABLE (doc picloud.docs, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_doc picloud.docs;
BEGIN
    PERFORM picloud.check_doc_ref(doc_put.collection, doc_put.id);
    PERFORM picloud.check_doc_data(doc_put.data);
    IF doc_put.id IS NULL THEN
        RAISE EXCEPTION 'a document id is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        SELECT * INTO v_doc FROM picloud.docs d
         WHERE d.app_id = doc_put.app_id AND d.collection = doc_put.collection
           AND d.id = doc_put.id
           FOR UPDATE;
        IF FOUND THEN
            IF doc_put.if_version IS NOT NULL AND v_doc.version <> doc_put.if_version THEN
                RAISE EXCEPTION 'version conflict: document is at version %, not %',
                    v_doc.version, doc_put.if_version USING ERRCODE = 'PC409';
            END IF;
            UPDATE picloud.docs d
               SET data = doc_put.data
             WHERE d.app_id = doc_put.app_id AND d.collection = doc_put.collection
               AND d.id = doc_put.id
            RETURNING * INTO v_doc;
            RETURN QUERY SELECT v_doc, false;
            RETURN;
        END IF;
        IF doc_put.if_version IS NOT NULL THEN
            RAISE EXCEPTION 'version conflict: document does not exist (expected version %)',
                doc_put.if_version USING ERRCODE = 'PC409';
        END IF;
        INSERT INTO picloud.docs (app_id, collection, id, data)
        VALUES (doc_put.app_id, doc_put.collection, doc_put.id, doc_put.data)
        ON CONFLICT ON CONSTRAINT docs_pkey DO NOTHING
        RETURNING * INTO v_doc;
        IF FOUND THEN
            RETURN QUERY SELECT v_doc, true;
            RETURN;
        END IF;
        -- A concurrent insert won the race: go round and update it.
    END LOOP;
END
$$;
COMMENT ON FUNCTION picloud.doc_put(uuid, text, text, jsonb, bigint) IS
    'Create or replace a document. With if_version, the document must exist at exactly that version, else SQLSTATE PC409 (version conflict). Each replace bumps version by one.';

CREATE OR REPLACE FUNCTION picloud.doc_delete(app_id uuid, collection text, id text,
                                              if_version bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
BEGIN
    PERFORM picloud.check_doc_ref(doc_delete.collection, coalesce(doc_delete.id, ''));
    SELECT d.version INTO v_version FROM picloud.docs d
     WHERE d.app_id = doc_delete.app_id AND d.collection = doc_delete.collection
       AND d.id = doc_delete.id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such document' USING ERRCODE = 'no_data_found';
    END IF;
    IF doc_delete.if_version IS NOT NULL AND v_version <> doc_delete.if_version THEN
        RAISE EXCEPTION 'version conflict: document is at version %, not %',
            v_version, doc_delete.if_version USING ERRCODE = 'PC409';
    END IF;
    DELETE FROM picloud.docs d
     WHERE d.app_id = doc_delete.app_id AND d.collection = doc_delete.collection
       AND d.id = doc_delete.id;
    RETURN v_version;
END
$$;
COMMENT ON FUNCTION picloud.doc_delete(uuid, text, text, bigint) IS
    'Delete a document (22023 for an invalid collection name or id; P0002 when missing; PC409 when if_version is given and differs); returns the deleted version.';

CREATE OR REPLACE FUNCTION picloud.doc_get(app_id uuid, collection text, id text)
RETURNS SETOF picloud.docs
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- PL/pgSQL: the reference is checked when the function runs, after the
    -- picloud.authorize beside it in the statement, never at plan time.
    PERFORM picloud.check_doc_ref(doc_get.collection, coalesce(doc_get.id, ''));
    RETURN QUERY SELECT d.* FROM picloud.docs d
                  WHERE d.app_id = doc_get.app_id AND d.collection = doc_get.collection
                    AND d.id = doc_get.id;
END
$$;
COMMENT ON FUNCTION picloud.doc_get(uuid, text, text) IS
    'One document (22023 for an invalid collection name or id), or no row.';

CREATE OR REPLACE FUNCTION picloud.doc_list(app_id uuid, collection text, after_id text,
                                            page_size integer)
RETURNS SETOF picloud.docs
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM picloud.check_doc_ref(doc_list.collection, NULL);
    RETURN QUERY SELECT d.* FROM picloud.docs d
                  WHERE d.app_id = doc_list.app_id AND d.collection = doc_list.collection
                    AND (doc_list.after_id IS NULL OR d.id > doc_list.after_id)
                  ORDER BY d.id
                  LIMIT doc_list.page_size;
END
$$;
COMMENT ON FUNCTION picloud.doc_list(uuid, text, text, integer) IS
    'A page of a collection''s documents in id order after a cursor id (NULL: from the start); 22023 for an invalid collection name.';

CREATE OR REPLACE FUNCTION picloud.docs_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version = OLD.version THEN
        NEW.version := OLD.version + 1;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION picloud.docs_touch() IS
    'BEFORE UPDATE on docs: bumps version by one (unless the UPDATE sets it) and stamps updated_at, so plain UPDATEs from psql keep optimistic concurrency working.';

DROP TRIGGER IF EXISTS docs_touch ON picloud.docs;
CREATE TRIGGER docs_touch BEFORE UPDATE ON picloud.docs
    FOR EACH ROW EXECUTE FUNCTION picloud.docs_touch();

CREATE OR REPLACE FUNCTION picloud.docs_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND (OLD.app_id, OLD.collection, OLD.id)
                                IS DISTINCT FROM (NEW.app_id, NEW.collection, NEW.id)) THEN
        IF picloud.sources_app_exists(OLD.app_id) THEN
            PERFORM picloud.enqueue_event(OLD.app_id, 'docs', OLD.collection,
                jsonb_build_object('type', 'delete', 'collection', OLD.collection, 'id', OLD.id,
                                   'version', OLD.version));
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM picloud.enqueue_event(NEW.app_id, 'docs', NEW.collection,
        jsonb_build_object(
            'type', CASE WHEN TG_OP = 'UPDATE'
                          AND (OLD.app_id, OLD.collection, OLD.id)
                              IS NOT DISTINCT FROM (NEW.app_id, NEW.collection, NEW.id)
                         THEN 'update' ELSE 'insert' END,
            'collection', NEW.collection, 'id', NEW.id, 'version', NEW.version,
            'data', NEW.data, 'updated_at', NEW.updated_at));
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.docs_fan_out() IS
    'AFTER INSERT/UPDATE/DELETE on docs: enqueues a docs event (subject = collection) — {"type": "insert"|"update", "collection", "id", "version", "data", "updated_at"} or {"type": "delete", "collection", "id", "version"}.';

DROP TRIGGER IF EXISTS docs_fan_out ON picloud.docs;
CREATE TRIGGER docs_fan_out AFTER INSERT OR UPDATE OR DELETE ON picloud.docs
    FOR EACH ROW EXECUTE FUNCTION picloud.docs_fan_out();
