-- Multiplexed streams: subscriber tokens may name several topics, so their claims gain a
-- topics column (a changed result type: the function is dropped and sql/31_tokens.sql
-- creates it again).
DROP FUNCTION IF EXISTS picloud.subscriber_token_claims(text);
