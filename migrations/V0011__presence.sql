-- Presence: who is connected to a topic, kept by every node's relay (sql/34_presence.sql).

ALTER TABLE picloud.topics ADD COLUMN presence boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN picloud.topics.presence IS 'Track who is here: subscribers whose token names a subject are present while connected (view picloud.presence), and every subscriber of the topic receives event: presence frames (joined/left).';

CREATE UNLOGGED TABLE picloud.presence_nodes (
    node_id    text        PRIMARY KEY CONSTRAINT presence_nodes_id_length CHECK (length(node_id) BETWEEN 1 AND 200),
    started_at timestamptz NOT NULL DEFAULT now(),
    beat_at    timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE picloud.presence_nodes IS 'Nodes whose relays keep presence, with their lease: a node counts until expires_at, which each heartbeat (picloud.presence_heartbeat) moves forward. A node that stops beating is removed by picloud.presence_expire, its subjects leaving. Unlogged: presence, not data (a crash restart empties it and every relay joins its connections again).';

CREATE UNLOGGED TABLE picloud.presence_connections (
    node_id      text        NOT NULL REFERENCES picloud.presence_nodes (node_id) ON DELETE CASCADE,
    conn_id      bigint      NOT NULL,
    app_id       uuid        NOT NULL,
    topic        text        NOT NULL,
    subject      text        NOT NULL CONSTRAINT presence_connections_subject_length CHECK (length(subject) BETWEEN 1 AND 256),
    info         jsonb       CONSTRAINT presence_connections_info_object CHECK (info IS NULL OR jsonb_typeof(info) = 'object'),
    connected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, conn_id),
    FOREIGN KEY (app_id, topic) REFERENCES picloud.topics (app_id, name) ON DELETE CASCADE
);
CREATE INDEX presence_connections_subject_idx
    ON picloud.presence_connections (app_id, topic, subject);
COMMENT ON TABLE picloud.presence_connections IS 'One row per live SSE connection with a subject on a presence topic, on the node that holds it (conn_id: that node''s number for the connection). Written only by picloud.presence_join / presence_leave / presence_expire; read through the view picloud.presence.';

-- Tokens may carry an info object: the signing function, the multi-topic form and the
-- claims (a changed result type) are created again by sql/31_tokens.sql.
DROP FUNCTION IF EXISTS picloud.sign_subscriber_token(uuid, text[], interval, boolean, text);
DROP FUNCTION IF EXISTS picloud.subscriber_token(uuid, text[], interval, text);
DROP FUNCTION IF EXISTS picloud.subscriber_token_claims(text);
