-- Hostile input: no more than the first 8 characters of a key are kept in clear (the old
-- 12-character prefixes are cut down), and the table holds every later row to it.

UPDATE picloud.api_keys SET key_prefix = left(key_prefix, 8) WHERE length(key_prefix) > 8;
ALTER TABLE picloud.api_keys
    ADD CONSTRAINT api_keys_prefix_length CHECK (length(key_prefix) <= 8);
COMMENT ON COLUMN picloud.api_keys.key_prefix IS
    'The first (at most 8) characters of the key, to recognise it in listings; the rest is never stored.';

-- A webhook URL may not carry credentials (user:pass@): they would travel to whatever the
-- host resolves to, and they read like an address in listings. Rows from before stay
-- (NOT VALID); every new or changed URL is held to it.
ALTER TABLE picloud.handlers
    ADD CONSTRAINT handlers_url_no_credentials CHECK (url !~ '^[A-Za-z]+://[^/?#]*@') NOT VALID;
