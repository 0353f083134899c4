-- name: claim_relay
-- Lease up to $1 due events, lowest id first, for $2 seconds; concurrent relays skip each
-- other's rows. The payload comes from the outbox (kept while a relay is owed).
WITH picked AS (
    SELECT event_id FROM stream_relay
    WHERE relayed_at IS NULL AND available_at <= now()
    ORDER BY event_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE stream_relay AS r
SET available_at = now() + make_interval(secs => $2), attempts = r.attempts + 1
FROM picked
LEFT JOIN outbox AS o ON o.id = picked.event_id
WHERE r.event_id = picked.event_id
RETURNING r.event_id, r.event_type, r.attempts, o.site_id, o.payload,
          o.created_at AS event_created_at;

-- name: mark_relayed
-- JetStream acknowledged these events ($1); the first acknowledgement is kept.
UPDATE stream_relay SET relayed_at = now(), last_error = NULL
WHERE event_id = ANY ($1::bigint[]) AND relayed_at IS NULL;

-- name: back_off
-- Events ($1) not acknowledged: due again after $2 seconds, with the error $3.
UPDATE stream_relay
SET available_at = now() + make_interval(secs => $2), last_error = $3
WHERE event_id = ANY ($1::bigint[]) AND relayed_at IS NULL;

-- name: backlog
-- Events not yet acknowledged by JetStream (due, leased or backing off), and the age of the
-- oldest.
SELECT count(*)::int AS pending,
       coalesce(extract(epoch FROM now() - min(queued_at)), 0)::float8 AS oldest_age_s
FROM stream_relay
WHERE relayed_at IS NULL;

-- name: owed
-- Whether any event still waits for its acknowledgement.
SELECT EXISTS (SELECT 1 FROM stream_relay WHERE relayed_at IS NULL);

-- name: select_replay
-- Relayed events whose outbox event was created in [$1, $2), oldest first, locked.
SELECT r.event_id FROM stream_relay AS r
JOIN outbox AS o ON o.id = r.event_id
WHERE r.relayed_at IS NOT NULL AND o.created_at >= $1 AND o.created_at < $2
ORDER BY r.event_id
FOR UPDATE OF r;

-- name: requeue
-- Publish events ($1) again, due now with a fresh attempt count.
UPDATE stream_relay
SET relayed_at = NULL, available_at = now(), attempts = 0, last_error = NULL
WHERE event_id = ANY ($1::bigint[]);
