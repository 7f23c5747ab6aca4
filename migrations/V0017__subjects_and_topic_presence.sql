-- The subject of a subscriber token (the app's user id, shown by presence and in the frames
-- a token publishes as "from") in one place: picloud.token_subject_valid, which the CHECK of
-- picloud.presence_connections calls and picloud.check_token_subject (sql/31_tokens.sql)
-- raises on, when a token is signed and when its claims are read. It is defined here, not
-- in sql/, because a constraint depends on it: a change of the rule is a new migration.
CREATE OR REPLACE FUNCTION picloud.token_subject_valid(subject text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT token_subject_valid.subject IS NOT NULL
       AND length(token_subject_valid.subject) BETWEEN 1 AND 128
       AND token_subject_valid.subject !~ '[[:cntrl:]]'
$$;
COMMENT ON FUNCTION picloud.token_subject_valid(text) IS
    'A subscriber token''s subject is 1-128 characters without control characters. The rule of every subject: token signing, token claims and the CHECK of picloud.presence_connections call it.';

-- NOT VALID: rows of streams open while this runs came from tokens signed under the former
-- limit (256 characters); they go when those streams close, and every new row is checked.
ALTER TABLE picloud.presence_connections
    DROP CONSTRAINT IF EXISTS presence_connections_subject_length,
    DROP CONSTRAINT IF EXISTS presence_connections_subject_valid,
    ADD CONSTRAINT presence_connections_subject_valid
        CHECK (picloud.token_subject_valid(subject)) NOT VALID;

-- picloud.create_topic gains presence (sql/30_topics.sql creates the new signature).
DROP FUNCTION IF EXISTS picloud.create_topic(uuid, text, boolean, text);
