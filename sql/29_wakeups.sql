-- Wake-ups on commit: at most one committing transaction carries a NOTIFY per channel.

CREATE OR REPLACE FUNCTION picloud.wake_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1885435474 $$;
COMMENT ON FUNCTION picloud.wake_lock_class() IS
    'First key of the transaction-level advisory locks of the commit wake-ups (picloud.wake_on_commit): per kind, (class, 2k - 1) is held by the one committing transaction that carries the NOTIFY and (class, 2k) shared by every committing writer; k = 1 realtime, 2 dispatch.';

CREATE OR REPLACE FUNCTION picloud.wake_lock_key(kind text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    CASE wake_lock_key.kind
        WHEN 'realtime' THEN RETURN 2;
        WHEN 'dispatch' THEN RETURN 4;
        ELSE RAISE EXCEPTION 'no wake-up kind %', wake_lock_key.kind USING ERRCODE = '22023';
    END CASE;
END
$$;
COMMENT ON FUNCTION picloud.wake_lock_key(text) IS
    'Second key of the shared "committing" lock of a wake-up kind (''realtime'' or ''dispatch''); the notifier''s lock is the key before it. 22023: another kind.';

CREATE OR REPLACE FUNCTION picloud.wake_on_commit() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_kind text := TG_ARGV[0];
    v_key  integer := picloud.wake_lock_key(TG_ARGV[0]);
BEGIN
    -- Runs at commit (a deferred trigger), once per transaction and kind. PostgreSQL
    -- serialises the commits of notifying transactions (a global lock held through the
    -- commit's fsync), so at most one committing writer carries the NOTIFY: the one that
    -- wins the try-lock. The others commit without one; listeners learn of them through
    -- the shared lock every committing writer holds until its commit is visible (they
    -- read again while it is taken: picloud.writers_committing). Shared before the try:
    -- whoever fails the try is already counted as committing.
    IF current_setting('picloud.wake_done_' || v_kind, true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('picloud.wake_done_' || v_kind, 'on', true);
    PERFORM pg_advisory_xact_lock_shared(picloud.wake_lock_class(), v_key);
    IF pg_try_advisory_xact_lock(picloud.wake_lock_class(), v_key - 1) THEN
        PERFORM pg_notify(
            CASE v_kind WHEN 'realtime' THEN picloud.realtime_channel()
                        ELSE picloud.dispatch_channel() END,
            coalesce(current_setting('picloud.wake_payload_' || v_kind, true), ''));
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.wake_on_commit() IS
    'Deferred trigger (argument: the kind, ''realtime'' on picloud.messages, ''dispatch'' on picloud.deliveries): at commit of a transaction that wrote, sends the kind''s wake-up NOTIFY (payload: the setting picloud.wake_payload_<kind>, e.g. ''<app_id> <seq> <topic>'' of the last append) unless another committing transaction already carries one, and holds the kind''s shared lock until its commit is visible.';

CREATE OR REPLACE FUNCTION picloud.writers_committing(kind text) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    -- Try the exclusive form and let go at once (CASE fixes the order of the two calls).
    SELECT CASE WHEN pg_try_advisory_lock(picloud.wake_lock_class(),
                                          picloud.wake_lock_key(writers_committing.kind))
                THEN NOT pg_advisory_unlock(picloud.wake_lock_class(),
                                            picloud.wake_lock_key(writers_committing.kind))
                ELSE true END
$$;
COMMENT ON FUNCTION picloud.writers_committing(text) IS
    'True while some transaction that wrote for this wake-up kind (''realtime'': published; ''dispatch'': enqueued deliveries) is committing. A listener asks before it reads: when false, every write that committed without its own NOTIFY before the question is visible to the read that follows. 22023: another kind.';
