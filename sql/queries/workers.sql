-- name: heartbeat
-- This worker is alive; `drained` is its running count of applied events, `claim` what it is
-- working on now (NULL: idle) since `claim_since` ($6, $7: epoch seconds).
INSERT INTO workers (worker_id, hostname, pid, drained, claim, claim_since)
VALUES ($1, $2, $3, $4, $5, to_timestamp($6))
ON CONFLICT (worker_id) DO UPDATE
SET seen_at = now(), drained = excluded.drained, claim = excluded.claim,
    claim_since = excluded.claim_since;
