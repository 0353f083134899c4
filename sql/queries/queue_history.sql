-- name: free_bucket
-- The current $1-second bucket of the database clock, or NULL when a sample already has it.
SELECT b.at
FROM (SELECT date_bin(make_interval(secs => $1), now(), timestamptz 'epoch') AS at) AS b
WHERE NOT EXISTS (SELECT 1 FROM queue_samples AS s WHERE s.at = b.at);

-- name: insert_sample
-- One sample for bucket $1 of $2 seconds: gauges now, counters over [$1 - $2 s, $1). A
-- concurrent sampler that took the bucket first wins; this one inserts nothing.
WITH since AS (SELECT $1::timestamptz - make_interval(secs => $2) AS t)
INSERT INTO queue_samples (at, interval_s, pending, backoff, dead, oldest_pending_s, processed,
                           failed, deliveries_sent, deliveries_failed, deliveries_dead)
SELECT $1, $2, q.pending, q.backoff, q.dead, q.oldest, p.n, f.n, ds.n, dd.failed, dd.dead
FROM since
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE dead_at IS NULL AND available_at <= now()) AS pending,
           count(*) FILTER (WHERE dead_at IS NULL AND available_at > now()) AS backoff,
           count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead,
           coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL)),
                    0)::float8 AS oldest
    FROM outbox WHERE processed_at IS NULL) AS q
CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM outbox
    WHERE processed_at >= since.t AND processed_at < $1) AS p
CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM outbox_errors
    WHERE at >= since.t AND at < $1) AS f
CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM deliveries
    WHERE delivered_at >= since.t AND delivered_at < $1) AS ds
CROSS JOIN LATERAL (
    -- Undelivered rows only (the deliveries_owed index): the last attempt failed in the
    -- interval (a claim in flight has no error yet), or the row was dead-lettered in it.
    SELECT count(*) FILTER (WHERE last_attempt_at >= since.t AND last_attempt_at < $1
                              AND last_error IS NOT NULL) AS failed,
           count(*) FILTER (WHERE dead_at >= since.t AND dead_at < $1) AS dead
    FROM deliveries WHERE delivered_at IS NULL) AS dd
ON CONFLICT (at) DO NOTHING
RETURNING at;

-- name: history
-- Samples in [$1, $2) downsampled to $3-second buckets from $1: the highest gauge of each
-- bucket, the sum of its counters, and how many seconds its samples cover.
SELECT date_bin(make_interval(secs => $3), at, $1) AS at,
       count(*)::int AS samples,
       sum(interval_s)::int AS covered_s,
       max(pending) AS pending,
       max(backoff) AS backoff,
       max(dead) AS dead,
       max(oldest_pending_s) AS oldest_pending_s,
       sum(processed)::bigint AS processed,
       sum(failed)::bigint AS failed,
       sum(deliveries_sent)::bigint AS deliveries_sent,
       sum(deliveries_failed)::bigint AS deliveries_failed,
       sum(deliveries_dead)::bigint AS deliveries_dead
FROM queue_samples
WHERE at >= $1 AND at < $2
GROUP BY 1
ORDER BY 1;

-- name: list_workers
-- Workers that beat since $1, the freshest first, up to $2; alive when they beat within $3 s.
SELECT worker_id, hostname AS host, pid, started_at, seen_at, drained, claim, claim_since,
       extract(epoch FROM now() - seen_at)::float8 AS heartbeat_age_s,
       seen_at > now() - make_interval(secs => $3) AS alive
FROM workers
WHERE seen_at >= $1
ORDER BY seen_at DESC, worker_id
LIMIT $2;
