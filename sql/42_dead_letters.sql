-- Dead letters: fan-out to dead_letter triggers, retry.

CREATE OR REPLACE FUNCTION picloud.dead_letters_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A dead letter of a dead_letter delivery fans out no further: no cascades.
    IF NEW.source <> 'dead_letter' THEN
        PERFORM picloud.enqueue_event(NEW.app_id, 'dead_letter', NEW.source, jsonb_build_object(
            'type', 'dead',
            'dead_letter_id', NEW.id,
            'delivery_id', NEW.delivery_id,
            'trigger_id', NEW.trigger_id,
            'handler_id', NEW.handler_id,
            'source', NEW.source,
            'subject', NEW.subject,
            'event', NEW.event,
            'attempts', NEW.attempts,
            'last_error', NEW.last_error,
            'created_at', NEW.created_at));
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION picloud.dead_letters_fan_out() IS
    'AFTER INSERT on dead_letters: enqueue_event(app, ''dead_letter'', <original source>, {"type": "dead", ...}), except for dead letters whose delivery came from the dead_letter source.';

DROP TRIGGER IF EXISTS dead_letters_fan_out ON picloud.dead_letters;
CREATE TRIGGER dead_letters_fan_out AFTER INSERT ON picloud.dead_letters
    FOR EACH ROW EXECUTE FUNCTION picloud.dead_letters_fan_out();

DROP FUNCTION IF EXISTS picloud.retry_dead_letter(bigint);
CREATE OR REPLACE FUNCTION picloud.retry_dead_letter(id bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_dl       picloud.dead_letters;
    v_delivery bigint;
BEGIN
    SELECT * INTO v_dl FROM picloud.dead_letters dl WHERE dl.id = retry_dead_letter.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no dead letter %', retry_dead_letter.id USING ERRCODE = 'P0002';
    END IF;
    INSERT INTO picloud.deliveries
        (app_id, trigger_id, handler_id, source, subject, event, max_attempts, retry_of)
    SELECT v_dl.app_id, v_dl.trigger_id, v_dl.handler_id, v_dl.source, v_dl.subject, v_dl.event,
           coalesce((SELECT t.max_attempts FROM picloud.triggers t
                      WHERE t.app_id = v_dl.app_id AND t.id = v_dl.trigger_id),
                    greatest(v_dl.attempts, 1)),
           v_dl.id
    RETURNING deliveries.id INTO v_delivery;
    UPDATE picloud.dead_letters dl SET retried_at = now(), retry_delivery_id = v_delivery
     WHERE dl.app_id = v_dl.app_id AND dl.id = v_dl.id;
    PERFORM pg_notify(picloud.dispatch_channel(), '');
    RETURN v_delivery;
END
$$;
COMMENT ON FUNCTION picloud.retry_dead_letter(bigint) IS
    'Re-enqueue a dead letter as a fresh delivery (attempts from zero, the trigger''s current max_attempts) and mark the dead letter retried. Returns the new delivery id; P0002 when there is no such dead letter.';
