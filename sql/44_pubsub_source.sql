-- The pub/sub source: every published message fans out to the app's pubsub triggers.

CREATE OR REPLACE FUNCTION picloud.messages_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM picloud.enqueue_event(NEW.app_id, 'pubsub', NEW.topic, jsonb_build_object(
        'type', 'publish',
        'topic', NEW.topic,
        'message_id', NEW.seq,
        'message', NEW.message,
        'published_at', NEW.published_at));
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.messages_fan_out() IS
    'AFTER INSERT on messages (so picloud.publish and plain INSERTs alike): enqueue_event(app, ''pubsub'', topic, {"type": "publish", "topic", "message_id", "message", "published_at"}).';

DROP TRIGGER IF EXISTS messages_fan_out ON picloud.messages;
CREATE TRIGGER messages_fan_out AFTER INSERT ON picloud.messages
    FOR EACH ROW EXECUTE FUNCTION picloud.messages_fan_out();
