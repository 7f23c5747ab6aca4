-- The topic-name rule in one place: picloud.topic_name_valid, which the tables' CHECKs call
-- (so plain DML obeys it), and picloud.check_topic_name raises on. It is defined here, not
-- in sql/30_topics.sql, because constraints depend on it: a change of the rule is a new
-- migration that replaces this function.
CREATE OR REPLACE FUNCTION picloud.topic_name_valid(name text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT topic_name_valid.name IS NOT NULL AND topic_name_valid.name ~ '^[A-Za-z0-9_.:-]{1,128}$'
$$;
COMMENT ON FUNCTION picloud.topic_name_valid(text) IS
    'Topic names are 1-128 characters of A-Z a-z 0-9 _ . : - (''*'' is reserved for patterns). The rule of every topic name: the CHECKs of picloud.topics and picloud.handlers call it.';

ALTER TABLE picloud.topics DROP CONSTRAINT topics_name_format,
    ADD CONSTRAINT topics_name_format CHECK (picloud.topic_name_valid(name));
ALTER TABLE picloud.handlers DROP CONSTRAINT handlers_topic_format,
    ADD CONSTRAINT handlers_topic_format CHECK (topic IS NULL OR picloud.topic_name_valid(topic));
