-- name: heartbeat
-- This worker is alive; `drained` is its running count of applied events.
INSERT INTO workers (worker_id, hostname, pid, drained) VALUES ($1, $2, $3, $4)
ON CONFLICT (worker_id) DO UPDATE SET seen_at = now(), drained = excluded.drained;
