-- name: create_topic
-- Create a topic (name and auth_mode checked in SQL).
SELECT app_id, name, external_subscribable, auth_mode, presence, created_at, updated_at
  FROM picloud.create_topic(%(app_id)s, %(name)s, %(external_subscribable)s, %(auth_mode)s,
                            %(presence)s);

-- name: create_topic_as
-- Create a topic for a key with topics:manage (name and auth_mode checked in SQL).
SELECT t.app_id, t.name, t.external_subscribable, t.auth_mode, t.presence, t.created_at,
       t.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.create_topic(a.app, %(name)s, %(external_subscribable)s,
                                    coalesce(%(auth_mode)s, 'token'), %(presence)s) t;

-- name: list_topics
-- An app's topics by name.
SELECT app_id, name, external_subscribable, auth_mode, presence, created_at, updated_at
  FROM picloud.topics WHERE app_id = %(app_id)s ORDER BY name;

-- name: list_topics_as
-- An app's topics by name, for a key with topics:manage.
SELECT t.app_id, t.name, t.external_subscribable, t.auth_mode, t.presence, t.created_at,
       t.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL (SELECT * FROM picloud.topics WHERE app_id = a.app OFFSET 0) t
 ORDER BY t.name;

-- name: get_topic
-- One topic of an app (a malformed name is 22023), for a key with topics:manage.
SELECT t.app_id, t.name, t.external_subscribable, t.auth_mode, t.presence, t.created_at,
       t.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.topic(a.app, %(name)s) t;

-- name: update_topic
-- Change a topic's flags; NULL leaves a flag as it is. No row: no such topic.
SELECT app_id, name, external_subscribable, auth_mode, presence, created_at, updated_at
  FROM picloud.update_topic(%(app_id)s, %(name)s, %(external_subscribable)s, %(auth_mode)s,
                            %(presence)s);

-- name: update_topic_as
-- Change a topic's flags for a key with topics:manage. No row: no such topic.
SELECT t.app_id, t.name, t.external_subscribable, t.auth_mode, t.presence, t.created_at,
       t.updated_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.update_topic(a.app, %(name)s, %(external_subscribable)s,
                                    %(auth_mode)s, %(presence)s) t;

-- name: delete_topic
-- Delete a topic and its messages; triggers tell every relay to end its streams.
SELECT d.name FROM picloud.delete_topic(%(app_id)s, %(name)s) AS d(name);

-- name: delete_topic_as
-- Delete a topic and its messages, for a key with topics:manage.
SELECT d.name
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.delete_topic(a.app, %(name)s) AS d(name);

-- name: publish_group
-- A group of publish requests (API key or subscriber token) in one statement, so one
-- transaction and one wake-up: each request authorised and validated alone, one row per
-- request (1-based i) with its message ids and time, or the SQLSTATE it was refused with.
-- The arrays are sent in binary format: psycopg's text format quotes every element with
-- a regex, a tenth of the server's CPU per grouped publish.
SELECT i, error_state, error_message, ids, published_at
  FROM picloud.publish_group(%(keys)b::text[], %(app_ids)b::uuid[], %(capabilities)b::text[],
                             %(hosts)b::text[], %(tokens)b::text[], %(topics)b::text[],
                             %(messages)b::text[], %(singles)b::boolean[]);

-- name: publish_one
-- A group of one publish request, by itself (no subtransaction, no arrays): its message
-- ids and time; a refusal is raised with the SQLSTATE publish_group would answer.
SELECT ids, published_at
  FROM picloud.publish_one(%(key)s::text, %(app_id)s::uuid, %(capability)s::text,
                           %(host)s::text, %(token)s::text, %(topic)s::text,
                           %(messages)s::text, %(single)s::boolean);

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
-- as a position in the current incarnation), for a key with topics:publish. A position of
-- another incarnation, or beyond the head, resets to the start of the current one (reset
-- true). Only settled messages (picloud.settled_messages): none that a later commit could
-- precede. One row with id NULL when there are no messages, no row when the topic does not
-- exist; a malformed name is 22023 (picloud.topic).
SELECT t.epoch, c.reset, m.seq AS id, t.name AS topic, m.message, m.published_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a
 CROSS JOIN LATERAL picloud.topic(a.app, %(topic)s) t
 CROSS JOIN LATERAL (
        SELECT coalesce(%(epoch)s::bigint <> t.epoch, false)
               OR %(after)s::bigint > picloud.topic_head(t.app_id, t.name) AS reset) c
  LEFT JOIN LATERAL picloud.settled_messages(
        t.app_id, t.name, CASE WHEN c.reset THEN 0 ELSE %(after)s::bigint END,
        %(limit)s) m ON true
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
-- subject and info (what presence shows of it), and its expiry, for a key with tokens:mint.
SELECT s.token, s.expires_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.mint_stream_token(a.app, %(topics)s::text[], %(ttl_seconds)s,
                                         %(subject)s::text, %(info)s::jsonb) s;

-- name: mint_token
-- A subscriber token for a topic (optionally granting publish, which the key must hold
-- too, with a subject) and its expiry, for a key with tokens:mint.
SELECT s.token, s.expires_at
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.mint_topic_token(a.key_id, a.app, %(topic)s, %(ttl_seconds)s,
                                        %(can_publish)s, %(subject)s) s;
-- name: signing_key_status
-- An app's token signing key version and times (never the key), for a key with app:admin;
-- every field NULL while the app has no key yet.
SELECT s.key_version, s.created_at, s.rotated_at, s.previous_valid_until
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a
  LEFT JOIN LATERAL (SELECT * FROM picloud.app_secrets WHERE app_id = a.app OFFSET 0) s ON true;

-- name: rotate_signing_key
-- Rotate an app's signing key for a key with app:admin: the new version, the rotation time
-- and the previous key's grace end.
SELECT r.key_version, r.rotated_at, r.previous_valid_until
  FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a,
       LATERAL picloud.rotate_signing_key(a.app, %(grace_seconds)s) r;
