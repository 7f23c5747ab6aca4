-- Operators' view of realtime: live subscriber counts reported by the relays.

CREATE OR REPLACE FUNCTION picloud.report_presence(
    node_id text, app_ids uuid[], topics text[], counts integer[])
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_rows integer;
BEGIN
    DELETE FROM picloud.realtime_presence p
     WHERE p.node_id = report_presence.node_id
       AND (p.app_id, p.topic) NOT IN (
            SELECT u.a, u.t FROM unnest(report_presence.app_ids, report_presence.topics) AS u(a, t));
    INSERT INTO picloud.realtime_presence AS p (app_id, topic, node_id, subscribers, reported_at)
    SELECT u.a, u.t, report_presence.node_id, u.n, now()
      FROM unnest(report_presence.app_ids, report_presence.topics, report_presence.counts)
           AS u(a, t, n)
    ON CONFLICT ON CONSTRAINT realtime_presence_pkey
    DO UPDATE SET subscribers = EXCLUDED.subscribers, reported_at = EXCLUDED.reported_at;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION picloud.report_presence(text, uuid[], text[], integer[]) IS
    'A relay reports its live subscriber counts per topic (replacing its previous report); returns how many topics it reported.';

CREATE OR REPLACE VIEW picloud.topic_subscribers AS
SELECT t.app_id, t.name AS topic, t.external_subscribable, t.auth_mode,
       picloud.topic_head(t.app_id, t.name) AS last_seq,
       coalesce(sum(p.subscribers), 0)::integer AS subscribers,
       count(p.node_id)::integer AS nodes,
       max(p.reported_at) AS reported_at
  FROM picloud.topics t
  LEFT JOIN picloud.realtime_presence p
    ON p.app_id = t.app_id AND p.topic = t.name
   AND p.reported_at > now() - interval '1 minute'
 GROUP BY t.app_id, t.name;
COMMENT ON VIEW picloud.topic_subscribers IS
    'Every topic with its live SSE subscribers summed over the nodes that reported in the last minute (relays report every few seconds), and its last drawn position (picloud.topic_head).';
