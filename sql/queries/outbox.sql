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
-- Events newest first, before cursor $1, filtered by state $2 (or 'all'), site $3, event
-- type $5, the payload's batch id $6 and request id $7, and created in [$8, $9) (each NULL
-- for any). Dead and retrying events are few (outbox_dead, outbox_due); with status 'all'
-- or 'processed' a batch or request id is looked for newest first, within retention.
SELECT id, event_type, site_id, payload, created_at, available_at, attempts, last_error,
       processed_at, dead_at
FROM outbox
WHERE id < $1
  AND ($3::bigint IS NULL OR site_id = $3)
  AND ($5::text IS NULL OR event_type = $5)
  AND ($6::text IS NULL OR payload->>'batch_id' = $6)
  AND ($7::text IS NULL OR payload->>'request_id' = $7)
  AND ($8::timestamptz IS NULL OR created_at >= $8)
  AND ($9::timestamptz IS NULL OR created_at < $9)
  AND CASE $2::text
      WHEN 'pending' THEN processed_at IS NULL AND dead_at IS NULL AND available_at <= now()
      WHEN 'backoff' THEN processed_at IS NULL AND dead_at IS NULL AND available_at > now()
      WHEN 'dead' THEN dead_at IS NOT NULL
      WHEN 'processed' THEN processed_at IS NOT NULL
      ELSE true END
ORDER BY id DESC
LIMIT $4;

-- name: get_event
-- One event, whatever its state.
SELECT id, event_type, site_id, payload, created_at, available_at, attempts, last_error,
       processed_at, dead_at
FROM outbox
WHERE id = $1;

-- name: event_errors
-- An event's recorded failures, oldest first (the drain keeps the last 20).
SELECT attempt, at, worker, error
FROM outbox_errors
WHERE event_id = $1
ORDER BY id;

-- name: event_audit
-- Replays that concern event $1, newest first (at most 100): those naming it among their
-- event_ids ('ids'), and filter replays whose site, type and creation range admit it and
-- that came after it ('filter': the filter may have selected it; which events a filter
-- selected is not recorded).
SELECT a.id, a.at, a.actor, a.role, a.action, a.params, a.affected, a.dry_run,
       CASE WHEN jsonb_typeof(a.params->'event_ids') = 'array' THEN 'ids' ELSE 'filter' END
           AS matched_by
FROM ops_audit AS a, outbox AS e
WHERE e.id = $1
  AND a.action = 'outbox.replay'
  AND CASE WHEN jsonb_typeof(a.params->'event_ids') = 'array'
           THEN a.params->'event_ids' @> to_jsonb(e.id)
           ELSE a.at >= e.created_at
                AND coalesce(a.params->>'site_id' = e.site_id::text, true)
                AND coalesce(a.params->>'event_type' = e.event_type, true)
                AND coalesce((a.params->>'created_from')::timestamptz <= e.created_at, true)
                AND coalesce((a.params->>'created_to')::timestamptz > e.created_at, true)
      END
ORDER BY a.id DESC
LIMIT 100;

-- name: select_replay
-- Events a replay would touch: ids $1, or site $2 with data in [$3, $4), or (only_dead $5)
-- dead ones, each narrowed by event type $6 and creation in [$7, $8) when given.
SELECT id FROM outbox
WHERE ($1::bigint[] IS NULL OR id = ANY ($1))
  AND ($2::bigint IS NULL OR site_id = $2)
  AND ($3::timestamptz IS NULL OR (payload->>'last_ts')::timestamptz >= $3)
  AND ($4::timestamptz IS NULL OR (payload->>'first_ts')::timestamptz < $4)
  AND (NOT $5 OR dead_at IS NOT NULL)
  AND ($6::text IS NULL OR event_type = $6)
  AND ($7::timestamptz IS NULL OR created_at >= $7)
  AND ($8::timestamptz IS NULL OR created_at < $8)
ORDER BY id;

-- name: requeue
-- Make events due again with a fresh set of attempts (applying them is idempotent).
UPDATE outbox
SET processed_at = NULL, dead_at = NULL, attempts = 0, last_error = NULL, available_at = now()
WHERE id = ANY ($1::bigint[]);
