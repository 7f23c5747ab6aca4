-- Topic epochs: each incarnation of a topic (creation, or creation again after a delete)
-- gets a new epoch, carried in the resume cursor, so a client resuming with a position of
-- an earlier incarnation is told (event: reset) instead of skipping messages silently.

ALTER TABLE picloud.topics
    ADD COLUMN epoch bigint NOT NULL
        DEFAULT (floor(extract(epoch FROM clock_timestamp()) * 1000000))::bigint
        CONSTRAINT topics_epoch_nonneg CHECK (epoch >= 0);
COMMENT ON COLUMN picloud.topics.epoch IS 'This incarnation of the topic: its creation time in microseconds since 1970 (a delete + create gives a new one). Part of the resume cursor (v1.<epoch>.<seq>).';
