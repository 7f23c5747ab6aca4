-- name: ping
-- The cheapest round trip: is the database reachable?
SELECT 1 AS ok;
