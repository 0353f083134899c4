-- name: queue_stats
-- Outbox depth by state and the age of the oldest live event (the lag).
SELECT count(*) FILTER (WHERE dead_at IS NULL AND available_at <= now()) AS pending,
       count(*) FILTER (WHERE dead_at IS NULL AND available_at > now()) AS in_backoff,
       count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead,
       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL)), 0)
           ::float8 AS oldest_pending_age_s
FROM outbox
WHERE processed_at IS NULL;

-- name: throughput
-- Events applied in the last minute and the last hour.
SELECT count(*) FILTER (WHERE processed_at > now() - interval '1 minute') AS last_minute,
       count(*) AS last_hour
FROM outbox
WHERE processed_at > now() - interval '1 hour';

-- name: workers
-- Worker heartbeats: age of the freshest, and how many beat in the last 10 seconds.
SELECT extract(epoch FROM now() - max(seen_at))::float8 AS heartbeat_age_s,
       count(*) FILTER (WHERE seen_at > now() - interval '10 seconds') AS alive
FROM workers;

-- name: list_outbox
-- Events newest first, before cursor $1, filtered by state $2 (or 'all'), site $3 and
-- event type $5 (either NULL for any).
SELECT id, event_type, site_id, payload, created_at, available_at, attempts, last_error,
       processed_at, dead_at
FROM outbox
WHERE id < $1
  AND ($3::bigint IS NULL OR site_id = $3)
  AND ($5::text IS NULL OR event_type = $5)
  AND CASE $2::text
      WHEN 'pending' THEN processed_at IS NULL AND dead_at IS NULL AND available_at <= now()
      WHEN 'backoff' THEN processed_at IS NULL AND dead_at IS NULL AND available_at > now()
      WHEN 'dead' THEN dead_at IS NOT NULL
      WHEN 'processed' THEN processed_at IS NOT NULL
      ELSE true END
ORDER BY id DESC
LIMIT $4;

-- name: select_replay
-- Events a replay would touch: ids $1, or site $2 with data in [$3, $4), or (only_dead $5) dead.
SELECT id FROM outbox
WHERE ($1::bigint[] IS NULL OR id = ANY ($1))
  AND ($2::bigint IS NULL OR site_id = $2)
  AND ($3::timestamptz IS NULL OR (payload->>'last_ts')::timestamptz >= $3)
  AND ($4::timestamptz IS NULL OR (payload->>'first_ts')::timestamptz < $4)
  AND (NOT $5 OR dead_at IS NOT NULL)
ORDER BY id;

-- name: requeue
-- Make events due again with a fresh set of attempts (applying them is idempotent).
UPDATE outbox
SET processed_at = NULL, dead_at = NULL, attempts = 0, last_error = NULL, available_at = now()
WHERE id = ANY ($1::bigint[]);
