-- Publishing 2: who published a message (token publish), handlers that publish to a
-- topic (live collections), and the new signatures of the token functions.

ALTER TABLE picloud.messages ADD COLUMN from_subject text;
COMMENT ON COLUMN picloud.messages.from_subject IS
    'The subject of the subscriber token that published this message (SSE frame field "from"); NULL for API, SQL and handler publishes.';

ALTER TABLE picloud.handlers ADD COLUMN topic text
    CONSTRAINT handlers_topic_format CHECK (topic ~ '^[A-Za-z0-9_.:-]{1,128}$');
ALTER TABLE picloud.handlers DROP CONSTRAINT handlers_kind_known;
ALTER TABLE picloud.handlers ADD CONSTRAINT handlers_kind_known
    CHECK (kind IN ('webhook', 'sql', 'topic'));
ALTER TABLE picloud.handlers DROP CONSTRAINT handlers_kind_fields;
ALTER TABLE picloud.handlers ADD CONSTRAINT handlers_kind_fields CHECK (
    (kind = 'webhook' AND url IS NOT NULL AND secret IS NOT NULL AND function IS NULL
         AND topic IS NULL)
    OR (kind = 'sql' AND function IS NOT NULL AND url IS NULL AND secret IS NULL
         AND topic IS NULL)
    OR (kind = 'topic' AND topic IS NOT NULL AND url IS NULL AND secret IS NULL
         AND function IS NULL));
COMMENT ON TABLE picloud.handlers IS 'What a trigger runs: a webhook (url, signing secret, timeout), an SQL function f(event jsonb) in one of PICLOUD_SQL_HANDLER_SCHEMAS (timeout = statement timeout), or a topic (the event is published to it inside the transaction that made the change; no delivery).';

-- subscriber_token gains can_publish and subject; its claims gain both columns.
DROP FUNCTION IF EXISTS picloud.subscriber_token(uuid, text, interval);
DROP FUNCTION IF EXISTS picloud.subscriber_token_claims(text);
