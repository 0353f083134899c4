-- name: claim_due_events
-- Lock up to $1 due events, oldest first; concurrent drainers skip each other's rows.
SELECT id, event_type, site_id, payload, attempts
FROM outbox
WHERE processed_at IS NULL AND dead_at IS NULL AND available_at <= now()
ORDER BY available_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: mark_processed_and_queue_deliveries
-- Events applied in this transaction; each live subscription to an event's type gets a
-- delivery to send (once: a replayed event is not queued twice). Returns deliveries queued.
-- Subscribers see the outbox type $2 as $3 (domain/events.py keeps that one mapping).
-- With the stream enabled ($4), each event is also queued for the JetStream relay.
WITH done AS (
    UPDATE outbox SET processed_at = now(), last_error = NULL
    WHERE id = ANY ($1::bigint[])
    RETURNING id, CASE event_type WHEN $2::text THEN $3::text ELSE event_type END AS event_type
), queued AS (
    INSERT INTO deliveries (subscription_id, event_id, event_type)
    SELECT s.id, d.id, d.event_type
    FROM done AS d
    JOIN webhook_subscriptions AS s
      ON s.disabled_at IS NULL AND s.event_types @> ARRAY[d.event_type]
    ORDER BY d.id, s.id
    ON CONFLICT (subscription_id, event_id) DO NOTHING
    RETURNING 1
), relayed AS (
    INSERT INTO stream_relay (event_id, event_type)
    SELECT d.id, d.event_type FROM done AS d WHERE $4::bool
    ORDER BY d.id
    ON CONFLICT (event_id) DO NOTHING
)
SELECT count(*)::int FROM queued;

-- name: back_off_or_dead_letter
-- Back an event off after a failure; dead-letter it at the last allowed attempt.
UPDATE outbox
SET attempts = attempts + 1,
    last_error = $2,
    available_at = now() + make_interval(secs => $3),
    dead_at = CASE WHEN attempts + 1 >= $4 THEN now() END
WHERE id = $1
RETURNING dead_at IS NOT NULL AS dead;

-- name: record_error
-- Keep a failed attempt's error ($1 event, $2 attempt, $3 worker, $4 error) and trim the
-- event's history to its last 20 (this statement's snapshot misses the new row: 19 + 1).
WITH logged AS (
    INSERT INTO outbox_errors (event_id, attempt, worker, error) VALUES ($1, $2, $3, $4)
)
DELETE FROM outbox_errors
WHERE id IN (SELECT id FROM outbox_errors WHERE event_id = $1 ORDER BY id DESC OFFSET 19);
