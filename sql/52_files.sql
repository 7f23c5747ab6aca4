-- File metadata: upsert/delete returning the blob a caller must unlink, and fan-out.
-- Order of operations (see picloud.files.store): the blob is written to a *.tmp.* file,
-- fsynced and renamed to its final name BEFORE picloud.file_put commits the row, and an
-- old blob is unlinked only AFTER the row no longer points at it. So a committed row
-- always has its complete blob; a crash can leave only unreferenced blobs, never a
-- visible half-written file.

CREATE OR REPLACE FUNCTION picloud.check_file_path(path text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v_problem text;
BEGIN
    v_problem := CASE
        WHEN check_file_path.path IS NULL OR check_file_path.path = '' THEN 'it is empty'
        WHEN length(check_file_path.path) > 1024 THEN 'it is longer than 1024 characters'
        WHEN left(check_file_path.path, 1) = '/' THEN 'absolute paths are not allowed'
        WHEN check_file_path.path ~ '[[:cntrl:]\\]' THEN 'control characters and backslashes are not allowed'
        WHEN check_file_path.path ~ '(^|/)\.\.?(/|$)' THEN '"." and ".." segments are not allowed'
        WHEN position('//' IN check_file_path.path) > 0 OR right(check_file_path.path, 1) = '/'
            THEN 'empty path segments are not allowed'
    END;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid file path: %', v_problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN check_file_path.path;
END
$$;
COMMENT ON FUNCTION picloud.check_file_path(text) IS
    'The path when it is a valid relative file path (no "..", absolute paths, control characters or empty segments), else SQLSTATE 22023 saying why.';

CREATE OR REPLACE FUNCTION picloud.file_put(app_id uuid, path text, size bigint, sha256 text,
                                 content_type text, blob text)
RETURNS TABLE (file picloud.files, old_blob text)
LANGUAGE plpgsql AS $$
DECLARE
    v_old  text;
    v_file picloud.files;
BEGIN
    PERFORM picloud.check_file_path(file_put.path);
    LOOP
        SELECT f.blob INTO v_old FROM picloud.files f
         WHERE f.app_id = file_put.app_id AND f.path = file_put.path
           FOR UPDATE;
        IF FOUND THEN
            UPDATE picloud.files f
               SET size = file_put.size, sha256 = file_put.sha256,
                   content_type = file_put.content_type, blob = file_put.blob
             WHERE f.app_id = file_put.app_id AND f.path = file_put.path
            RETURNING * INTO v_file;
            RETURN QUERY SELECT v_file, v_old;
            RETURN;
        END IF;
        INSERT INTO picloud.files (app_id, path, size, sha256, content_type, blob)
        VALUES (file_put.app_id, file_put.path, file_put.size, file_put.sha256,
                file_put.content_type, file_put.blob)
        ON CONFLICT ON CONSTRAINT files_pkey DO NOTHING
        RETURNING * INTO v_file;
        IF FOUND THEN
            RETURN QUERY SELECT v_file, NULL::text;
            RETURN;
        END IF;
        -- A concurrent upload of the same path committed first: replace it instead.
    END LOOP;
END
$$;
COMMENT ON FUNCTION picloud.file_put(uuid, text, bigint, text, text, text) IS
    'Create or replace a file''s metadata row, pointing it at an already durable blob; old_blob is the replaced blob the caller unlinks after commit (NULL for a new file).';

CREATE OR REPLACE FUNCTION picloud.file_get(app_id uuid, path text)
RETURNS SETOF picloud.files
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- PL/pgSQL: the path is checked after the picloud.authorize beside it, not at plan time.
    RETURN QUERY SELECT f.* FROM picloud.files f
                  WHERE f.app_id = file_get.app_id AND f.path = picloud.check_file_path(file_get.path);
END
$$;
COMMENT ON FUNCTION picloud.file_get(uuid, text) IS
    'One file''s metadata with the blob it points at (22023 for an invalid path), or no row.';

CREATE OR REPLACE FUNCTION picloud.file_upload_path(app_id uuid, path text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- The gate of an upload, before any byte of it is stored; file_put checks again.
    RETURN picloud.check_file_path(file_upload_path.path);
END
$$;
COMMENT ON FUNCTION picloud.file_upload_path(uuid, text) IS
    'The path an upload to this app may be stored under (22023 saying why not): checked before the body is read.';

CREATE OR REPLACE FUNCTION picloud.file_delete(app_id uuid, path text)
RETURNS SETOF picloud.files
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    DELETE FROM picloud.files f
     WHERE f.app_id = file_delete.app_id AND f.path = picloud.check_file_path(file_delete.path)
    RETURNING f.*;
END
$$;
COMMENT ON FUNCTION picloud.file_delete(uuid, text) IS
    'Delete a file''s row (22023 for an invalid path): the deleted row (its blob the caller unlinks after commit), or no row when there was none.';

DROP TRIGGER IF EXISTS files_touch ON picloud.files;
CREATE TRIGGER files_touch BEFORE UPDATE ON picloud.files
    FOR EACH ROW EXECUTE FUNCTION picloud.sources_touch();

CREATE OR REPLACE FUNCTION picloud.files_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND (OLD.app_id, OLD.path) IS DISTINCT FROM (NEW.app_id, NEW.path)) THEN
        IF picloud.sources_app_exists(OLD.app_id) THEN
            PERFORM picloud.enqueue_event(OLD.app_id, 'files', OLD.path,
                jsonb_build_object('type', 'delete', 'path', OLD.path));
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM picloud.enqueue_event(NEW.app_id, 'files', NEW.path,
            jsonb_build_object('type', 'put', 'path', NEW.path, 'size', NEW.size,
                               'sha256', NEW.sha256, 'content_type', NEW.content_type,
                               'updated_at', NEW.updated_at));
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.files_fan_out() IS
    'AFTER INSERT/UPDATE/DELETE on files: enqueues a files event (subject = path) — {"type": "put", "path", "size", "sha256", "content_type", "updated_at"} or {"type": "delete", "path"}.';

DROP TRIGGER IF EXISTS files_fan_out ON picloud.files;
CREATE TRIGGER files_fan_out AFTER INSERT OR UPDATE OR DELETE ON picloud.files
    FOR EACH ROW EXECUTE FUNCTION picloud.files_fan_out();
