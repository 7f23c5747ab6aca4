-- The data of an SSE message frame, built in one place for replays and the relay.

CREATE OR REPLACE FUNCTION picloud.sse_frame_data(m picloud.messages) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- sql and one expression: the planner inlines it into the reading query.
    SELECT (jsonb_build_object('topic', m.topic, 'message', m.message,
                               'published_at', m.published_at)
            || CASE WHEN m.from_subject IS NOT NULL
                    THEN jsonb_build_object('from', m.from_subject) ELSE '{}' END)::text
$$;
COMMENT ON FUNCTION picloud.sse_frame_data(picloud.messages) IS
    'The JSON text an SSE frame carries for a message: {"topic", "message", "published_at"}, plus "from" (the publishing token''s subject) when it had one. Read by the stream replay and the relay (queries/realtime.sql).';
