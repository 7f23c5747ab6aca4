-- The pub/sub source: every published message fans out to the app's pubsub triggers.

-- (picloud.append_messages calls the fan-out itself, once per message, after an inline
-- test for a pubsub trigger of the app, so a publish to an app without one pays for an
-- index probe and no more.)

CREATE OR REPLACE FUNCTION picloud.fan_out_message(
    app_id uuid, topic text, seq bigint, message jsonb, published_at timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN picloud.enqueue_event(fan_out_message.app_id, 'pubsub', fan_out_message.topic,
                                 jsonb_build_object(
                                     'type', 'publish',
                                     'topic', fan_out_message.topic,
                                     'message_id', fan_out_message.seq,
                                     'message', fan_out_message.message,
                                     'published_at', fan_out_message.published_at));
END
$$;
COMMENT ON FUNCTION picloud.fan_out_message(uuid, text, bigint, jsonb, timestamptz) IS
    'The pub/sub source, called by picloud.publish (and publish_batch, once per message) for a message it appends when the app has an enabled pubsub trigger: enqueue_event(app, ''pubsub'', topic, {"type": "publish", "topic", "message_id", "message", "published_at"}). Returns how many deliveries were enqueued.';
