-- name: claim_deliveries
-- Lease up to $1 due deliveries, the oldest of each live (not disabled, not paused)
-- subscription first, at most its cap
-- ($4, or $6's entry) less what this sender has in flight for it ($2 subscription ids, $3
-- counts). Fair: a subscription's nth slot in flight comes before anyone's (n+1)th, so a
-- freed slot goes to the subscription with the fewest. Reserved: a subscription's second and
-- later slots are leased only while $7 slots stay free, so subscriptions holding slots (slow
-- receivers pile up) never take the last $7 from one with nothing in flight. The lease ($5
-- seconds) moves available_at forward instead of holding a lock across the HTTP call: a
-- sender that dies only delays the delivery to the lease's end.
WITH room AS (
    SELECT s.id, s.url, s.secret, coalesce(k.n, 0) AS busy,
           greatest(0, coalesce(k.cap, $4) - coalesce(k.n, 0)) AS room
    FROM webhook_subscriptions AS s
    LEFT JOIN unnest($2::bigint[], $3::int[], $6::int[]) AS k (subscription_id, n, cap)
      ON k.subscription_id = s.id
    -- Paused: its deliveries stay pending (the backlog is kept) until it is resumed.
    WHERE s.disabled_at IS NULL AND s.paused_at IS NULL
), due AS (
    SELECT d.id, d.event_id, d.available_at, room.url, room.secret,
           room.busy + row_number() OVER (PARTITION BY room.id ORDER BY d.available_at, d.id)
               AS nth
    FROM room
    CROSS JOIN LATERAL (
        SELECT d.id, d.event_id, d.available_at FROM deliveries AS d
        WHERE d.subscription_id = room.id
          AND d.delivered_at IS NULL AND d.dead_at IS NULL AND d.available_at <= now()
        ORDER BY d.available_at, d.id
        LIMIT room.room
        FOR UPDATE SKIP LOCKED
    ) AS d
), picked AS (
    SELECT due.*, row_number() OVER (ORDER BY due.nth, due.available_at, due.id) AS k
    FROM due
)
UPDATE deliveries AS d
SET available_at = now() + make_interval(secs => $5),
    attempts = d.attempts + 1,
    last_attempt_at = now()
FROM picked
LEFT JOIN outbox AS o ON o.id = picked.event_id
WHERE d.id = picked.id AND picked.k <= $1 AND (picked.nth = 1 OR picked.k <= $1 - $7)
RETURNING d.id, d.subscription_id, d.event_id, d.event_type, d.attempts,
          picked.url, picked.secret, o.site_id, o.payload, o.created_at AS event_created_at;

-- name: owed
-- Whether any live subscription still has a delivery to make (due, leased or backing off);
-- a paused one's backlog waits for its resume, so it is not owed now.
SELECT EXISTS (
    SELECT 1 FROM deliveries AS d
    JOIN webhook_subscriptions AS s
      ON s.id = d.subscription_id AND s.disabled_at IS NULL AND s.paused_at IS NULL
    WHERE d.delivered_at IS NULL AND d.dead_at IS NULL
);

-- name: record_outcomes
-- The results of sent deliveries: delivered, or backed off ($5 seconds), or dead-lettered
-- when the attempt was the last allowed ($6) or cannot succeed ($7: the destination is
-- refused). A row delivered or dead meanwhile (by another sender after its lease ran out)
-- keeps its first outcome.
UPDATE deliveries AS d
SET delivered_at = CASE WHEN o.ok THEN now() END,
    last_status_code = o.status,
    last_error = o.error,
    available_at = CASE WHEN o.ok THEN d.available_at
                        ELSE now() + make_interval(secs => o.delay) END,
    dead_at = CASE WHEN NOT o.ok AND (d.attempts >= $6 OR o.permanent) THEN now() END
FROM unnest($1::bigint[], $2::bool[], $3::int[], $4::text[], $5::float8[], $7::bool[])
     AS o (id, ok, status, error, delay, permanent)
WHERE d.id = o.id AND d.delivered_at IS NULL AND d.dead_at IS NULL;

-- name: create_subscription
INSERT INTO webhook_subscriptions (url, event_types, secret, description, created_by)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, url, event_types, description, created_at, created_by, disabled_at, paused_at,
          paused_by;

-- name: list_subscriptions
-- Every subscription with its delivery health.
SELECT s.id, s.url, s.event_types, s.description, s.created_at, s.created_by, s.disabled_at,
       s.paused_at, s.paused_by, h.backlog, h.pending, h.in_backoff, h.dead, h.delivered_last_hour, h.last_delivered_at,
       f.last_failure_at, f.last_error, f.last_status_code
FROM webhook_subscriptions AS s
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE d.delivered_at IS NULL AND d.dead_at IS NULL)::int AS backlog,
           count(*) FILTER (WHERE d.delivered_at IS NULL AND d.dead_at IS NULL
                              AND d.attempts = 0)::int AS pending,
           count(*) FILTER (WHERE d.delivered_at IS NULL AND d.dead_at IS NULL
                              AND d.attempts > 0)::int AS in_backoff,
           count(*) FILTER (WHERE d.dead_at IS NOT NULL)::int AS dead,
           count(*) FILTER (WHERE d.delivered_at > now() - interval '1 hour')::int
               AS delivered_last_hour,
           max(d.delivered_at) AS last_delivered_at
    FROM deliveries AS d
    WHERE d.subscription_id = s.id
) AS h
LEFT JOIN LATERAL (
    SELECT d.last_attempt_at AS last_failure_at, d.last_error, d.last_status_code
    FROM deliveries AS d
    WHERE d.subscription_id = s.id AND d.last_error IS NOT NULL
    ORDER BY d.last_attempt_at DESC NULLS LAST
    LIMIT 1
) AS f ON true
WHERE $1::bool OR s.disabled_at IS NULL
ORDER BY s.id;

-- name: disable_subscription
-- Stop delivering to a subscription (its history stays); the first disable is kept.
UPDATE webhook_subscriptions SET disabled_at = coalesce(disabled_at, now())
WHERE id = $1
RETURNING id, url, event_types, description, created_at, created_by, disabled_at, paused_at,
          paused_by;

-- name: list_deliveries
-- Deliveries newest first before cursor $2: of subscription $1 (or of all), by state $3, of
-- event type $5 (or any).
SELECT id, subscription_id, event_id, event_type,
       CASE WHEN delivered_at IS NOT NULL THEN 'delivered'
            WHEN dead_at IS NOT NULL THEN 'dead'
            WHEN attempts > 0 THEN 'backoff'
            ELSE 'pending' END AS status,
       attempts, last_status_code, last_error, created_at, last_attempt_at,
       CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN available_at END
           AS next_attempt_at,
       delivered_at, dead_at
FROM deliveries
WHERE ($1::bigint IS NULL OR subscription_id = $1) AND id < $2
  AND ($5::text IS NULL OR event_type = $5)
  AND CASE $3::text
        WHEN 'pending' THEN delivered_at IS NULL AND dead_at IS NULL AND attempts = 0
        WHEN 'backoff' THEN delivered_at IS NULL AND dead_at IS NULL AND attempts > 0
        WHEN 'delivered' THEN delivered_at IS NOT NULL
        WHEN 'dead' THEN dead_at IS NOT NULL
        ELSE true END
ORDER BY id DESC
LIMIT $4;

-- name: select_replay
-- Deliveries to send again: by ids ($1), or a subscription's ($2), only dead ones if $3; of
-- event type $4 (or any), created in [$5, $6) (either end open when null).
SELECT d.id FROM deliveries AS d
JOIN webhook_subscriptions AS s ON s.id = d.subscription_id
WHERE ($1::bigint[] IS NULL OR d.id = ANY ($1))
  AND ($2::bigint IS NULL OR d.subscription_id = $2)
  AND (NOT $3::bool OR d.dead_at IS NOT NULL)
  AND ($4::text IS NULL OR d.event_type = $4)
  AND ($5::timestamptz IS NULL OR d.created_at >= $5)
  AND ($6::timestamptz IS NULL OR d.created_at < $6)
ORDER BY d.id
FOR UPDATE OF d;

-- name: requeue
-- Make deliveries due now with a fresh attempt budget (a replay sends them again).
UPDATE deliveries
SET available_at = now(), attempts = 0, delivered_at = NULL, dead_at = NULL
WHERE id = ANY ($1::bigint[]);

-- name: pause_subscription
-- Pause a live subscription by $2 (pausing a paused one keeps the first pause); null when it
-- does not exist. `changed`: whether this call paused it.
WITH old AS (
    SELECT id, paused_at FROM webhook_subscriptions WHERE id = $1 FOR UPDATE
)
UPDATE webhook_subscriptions AS s
SET paused_at = coalesce(s.paused_at, now()), paused_by = coalesce(s.paused_by, $2)
FROM old
WHERE s.id = old.id AND s.disabled_at IS NULL
RETURNING s.id, s.url, s.event_types, s.description, s.created_at, s.created_by, s.disabled_at,
          s.paused_at, s.paused_by, old.paused_at IS NULL AS changed;

-- name: resume_subscription
-- Resume a paused subscription (resuming a running one changes nothing): its kept backlog
-- was due all along, so the next claim takes it, oldest first.
WITH old AS (
    SELECT id, paused_at FROM webhook_subscriptions WHERE id = $1 FOR UPDATE
)
UPDATE webhook_subscriptions AS s
SET paused_at = NULL, paused_by = NULL
FROM old
WHERE s.id = old.id AND s.disabled_at IS NULL
RETURNING s.id, s.url, s.event_types, s.description, s.created_at, s.created_by, s.disabled_at,
          s.paused_at, s.paused_by, old.paused_at IS NOT NULL AS changed;

-- name: subscription_disabled
-- Whether subscription $1 is disabled (null: there is none).
SELECT disabled_at IS NOT NULL FROM webhook_subscriptions WHERE id = $1;
