-- name: create_topic
-- Create a topic (name and auth_mode checked in SQL).
SELECT app_id, name, external_subscribable, auth_mode, created_at, updated_at
  FROM picloud.create_topic(%(app_id)s, %(name)s, %(external_subscribable)s, %(auth_mode)s);

-- name: list_topics
-- An app's topics by name.
SELECT app_id, name, external_subscribable, auth_mode, created_at, updated_at
  FROM picloud.topics WHERE app_id = %(app_id)s ORDER BY name;

-- name: get_topic
-- One topic of an app.
SELECT app_id, name, external_subscribable, auth_mode, created_at, updated_at
  FROM picloud.topics WHERE app_id = %(app_id)s AND name = %(name)s;

-- name: update_topic
-- Change a topic's flags; NULL leaves a flag as it is.
UPDATE picloud.topics
   SET external_subscribable = coalesce(%(external_subscribable)s, external_subscribable),
       auth_mode = coalesce(%(auth_mode)s, auth_mode),
       updated_at = now()
 WHERE app_id = %(app_id)s AND name = %(name)s
RETURNING app_id, name, external_subscribable, auth_mode, created_at, updated_at;

-- name: delete_topic
-- Delete a topic and its messages; a trigger tells every relay to end its streams.
DELETE FROM picloud.topics WHERE app_id = %(app_id)s AND name = %(name)s RETURNING name;

-- name: publish_group
-- A group of publish requests (API key or subscriber token) in one statement, so one
-- transaction and one wake-up: each request authorised and validated alone, one row per
-- request (1-based i) with its ids' first_id and time, or the SQLSTATE it was refused with.
SELECT i, error_state, error_message, first_id, published_at
  FROM picloud.publish_group(%(keys)s::text[], %(app_ids)s::uuid[], %(capabilities)s::text[],
                             %(hosts)s::text[], %(tokens)s::text[], %(topics)s::text[],
                             %(messages)s::text[], %(singles)s::boolean[]);

-- name: publish_authorize
-- The key check alone, for a publish whose body is malformed: the caller learns of the
-- body only once it is allowed to publish (401, 404, 403 as picloud.authorize raises).
SELECT a.app FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a;

-- name: publish_message
-- Publish a message (JSON text) to a topic; its sequence number and time.
SELECT id, published_at FROM picloud.publish_message(%(app_id)s, %(topic)s, %(message)s::jsonb);

-- name: publish_batch
-- Publish a JSON array of messages in one statement (all or nothing); one row per message.
SELECT id, published_at FROM picloud.publish_batch(%(app_id)s, %(topic)s, %(messages)s::jsonb);

-- name: message_history
-- Messages of a topic after a cursor position (%(epoch)s NULL: a plain message id, taken
-- as a position in the current incarnation). A position of another incarnation, or beyond
-- the head, resets to the start of the current one (reset true). One row with id NULL
-- when there are no messages, no row when the topic does not exist.
SELECT t.epoch, c.reset, m.seq AS id, t.name AS topic, m.message, m.published_at
  FROM picloud.topics t
 CROSS JOIN LATERAL (
        SELECT coalesce(%(epoch)s::bigint <> t.epoch, false)
               OR %(after)s::bigint > t.last_seq AS reset) c
  LEFT JOIN LATERAL (
        SELECT seq, message, published_at FROM picloud.messages
         WHERE app_id = t.app_id AND topic = t.name
           AND seq > CASE WHEN c.reset THEN 0 ELSE %(after)s::bigint END
         ORDER BY seq LIMIT %(limit)s) m ON true
 WHERE t.app_id = %(app_id)s AND t.name = %(topic)s
 ORDER BY m.seq;

-- name: mint_subscriber_token
-- A subscriber token for a topic and its expiry.
SELECT s.token, c.expires_at
  FROM (SELECT picloud.subscriber_token(%(app_id)s, %(topic)s,
                                        make_interval(secs => %(ttl_seconds)s)) AS token) s
  CROSS JOIN LATERAL picloud.subscriber_token_claims(s.token) c;

-- name: rotate_app_secret
-- Replace an app's token signing key, keeping the previous one for a grace period.
SELECT picloud.rotate_app_secret(%(app_id)s, make_interval(secs => %(grace_seconds)s)) AS key_version;

-- name: mint_stream_token
-- A subscriber token for several topics (one multiplexed stream), with an optional
-- subject, and its expiry.
SELECT s.token, c.expires_at
  FROM (SELECT picloud.subscriber_token(%(app_id)s, %(topics)s::text[],
                                        make_interval(secs => %(ttl_seconds)s),
                                        %(subject)s::text) AS token) s
  CROSS JOIN LATERAL picloud.subscriber_token_claims(s.token) c;

-- name: mint_token
-- A subscriber token for a topic (optionally granting publish, with a subject) and its
-- expiry.
SELECT s.token, c.expires_at
  FROM (SELECT picloud.subscriber_token(%(app_id)s, %(topic)s,
                                        make_interval(secs => %(ttl_seconds)s),
                                        %(can_publish)s, %(subject)s) AS token) s
  CROSS JOIN LATERAL picloud.subscriber_token_claims(s.token) c;

-- name: signing_key_status
-- An app's token signing key version and times (never the key).
SELECT key_version, created_at, rotated_at, previous_valid_until
  FROM picloud.app_secrets WHERE app_id = %(app_id)s;

-- name: rotate_signing_key
-- Rotate an app's signing key; the new version and times (the function sets rotated_at
-- to now() and the previous key's grace end to now() + grace, this transaction's now()).
SELECT picloud.rotate_app_secret(%(app_id)s, make_interval(secs => %(grace_seconds)s))
           AS key_version,
       now() AS rotated_at, now() + make_interval(secs => %(grace_seconds)s) AS previous_valid_until;
