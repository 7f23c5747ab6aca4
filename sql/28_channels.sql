-- The NOTIFY channels, named here alone: the SQL that notifies calls these functions, and
-- listeners subscribe through picloud.listen, so no other file spells a channel's name.

CREATE OR REPLACE FUNCTION picloud.realtime_channel() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'picloud_realtime' $$;
COMMENT ON FUNCTION picloud.realtime_channel() IS
    'NOTIFY channel of published messages; payload ''<app_id> <seq> <topic>'' (ids only, never bodies).';

CREATE OR REPLACE FUNCTION picloud.realtime_control_channel() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'picloud_realtime_control' $$;
COMMENT ON FUNCTION picloud.realtime_control_channel() IS
    'NOTIFY channel telling relays to end the streams of a topic; payload ''close <app_id> <topic>''.';

CREATE OR REPLACE FUNCTION picloud.dispatch_channel() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'picloud_dispatch' $$;
COMMENT ON FUNCTION picloud.dispatch_channel() IS
    'The NOTIFY channel that wakes dispatchers when deliveries become due.';

CREATE OR REPLACE FUNCTION picloud.presence_channel() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'picloud_presence' $$;
COMMENT ON FUNCTION picloud.presence_channel() IS
    'NOTIFY channel of presence changes; payload JSON {"app","topic","event": "joined"|"left","subject","info"}.';

CREATE OR REPLACE FUNCTION picloud.listen(channel text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF listen.channel IS NULL OR listen.channel NOT IN (
        picloud.realtime_channel(), picloud.realtime_control_channel(),
        picloud.presence_channel(), picloud.dispatch_channel()) THEN
        RAISE EXCEPTION 'no PiCloud channel %', coalesce(quote_literal(listen.channel), 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'picloud.realtime_channel(), realtime_control_channel(), presence_channel() or dispatch_channel()';
    END IF;
    EXECUTE format('LISTEN %I', listen.channel);
    RETURN listen.channel;
END
$$;
COMMENT ON FUNCTION picloud.listen(text) IS
    'LISTEN on one of PiCloud''s NOTIFY channels (in effect once the calling transaction commits; call it in autocommit) and return its name, so listeners learn the names from here; 22023 for any other channel.';
