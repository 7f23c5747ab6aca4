-- Message positions without a lock held through commit: each topic incarnation numbers
-- its messages from a sequence of its own (schema picloud_positions) instead of the
-- topics.last_seq counter row that publishers locked until commit, so publishers of one
-- topic no longer queue on each other's commits. Numbers keep their meaning and go on
-- where last_seq stopped, so every cursor already handed out stays a position of its
-- topic. Readers advance only up to the commit-visibility horizon (sql/32_positions.sql).

CREATE SCHEMA IF NOT EXISTS picloud_positions;
COMMENT ON SCHEMA picloud_positions IS
    'One sequence per topic incarnation (picloud.topics.positions): the message positions of that topic, handed out without a lock held through commit.';

ALTER TABLE picloud.topics ADD COLUMN positions regclass;
COMMENT ON COLUMN picloud.topics.positions IS
    'The sequence (in schema picloud_positions) this topic incarnation draws its message positions from; created with the topic and dropped with it (triggers topics_create_positions and topics_drop_positions).';

DO $$
DECLARE
    v_topic record;
    v_name  text;
BEGIN
    FOR v_topic IN SELECT t.app_id, t.name, t.last_seq FROM picloud.topics t LOOP
        v_name := 'p' || replace(gen_random_uuid()::text, '-', '');
        EXECUTE format('CREATE SEQUENCE picloud_positions.%I AS bigint', v_name);
        IF v_topic.last_seq > 0 THEN
            PERFORM setval(format('picloud_positions.%I', v_name)::regclass, v_topic.last_seq);
        END IF;
        UPDATE picloud.topics t SET positions = format('picloud_positions.%I', v_name)::regclass
         WHERE t.app_id = v_topic.app_id AND t.name = v_topic.name;
    END LOOP;
END
$$ LANGUAGE plpgsql;

ALTER TABLE picloud.topics ALTER COLUMN positions SET NOT NULL;

-- The counter goes; the view that showed it is created again by sql/33_realtime_admin.sql
-- (its last_seq is now the topic's last drawn position, picloud.topic_head).
DROP VIEW IF EXISTS picloud.topic_subscribers;
ALTER TABLE picloud.topics DROP COLUMN last_seq;
COMMENT ON TABLE picloud.topics IS 'Pub/sub topics of an app. external_subscribable opens a topic to SSE subscribers (auth_mode public: anyone; token: a subscriber token). Message positions come from the sequence named in positions (picloud.append_messages), with no lock held through commit.';
COMMENT ON TABLE picloud.messages IS 'The durable pub/sub log, written by picloud.append_messages: per-topic positions (the SSE event ids) from the topic''s sequence, increasing in the order they were drawn; a rolled-back publish leaves a gap, and transactions may commit out of order, so readers advance only over positions that are settled (picloud.topic_blockers). Source of SSE replay (Last-Event-ID); pruned after PICLOUD_REALTIME_RETENTION_SEC by picloud.prune_messages. Rows go with their topic (trigger topics_delete_messages).';

-- append_messages also returns the ids of a batch (concurrent publishers of a topic may
-- draw between them): a new result type.
DROP FUNCTION IF EXISTS picloud.append_messages(uuid, text, jsonb, text, boolean, boolean);
