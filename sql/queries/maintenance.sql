-- name: delete_processed
-- Retention: up to $2 processed events older than $1, except those a webhook delivery still
-- needs (pending, retrying or dead-lettered: a replay sends the event from here) or the
-- stream relay has yet to publish.
DELETE FROM outbox
WHERE id IN (
    SELECT o.id FROM outbox AS o
    WHERE o.processed_at < $1
      AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                      WHERE d.event_id = o.id AND d.delivered_at IS NULL)
      AND NOT EXISTS (SELECT 1 FROM stream_relay AS r
                      WHERE r.event_id = o.id AND r.relayed_at IS NULL)
    ORDER BY o.processed_at
    LIMIT $2
);

-- name: delete_expired_keys
-- Retention: up to $1 expired idempotency records.
DELETE FROM ingest_requests
WHERE (scope, key) IN (
    SELECT scope, key FROM ingest_requests WHERE expires_at <= now() LIMIT $1);

-- name: delete_delivered
-- Retention: up to $2 deliveries delivered before $1.
DELETE FROM deliveries
WHERE id IN (SELECT id FROM deliveries WHERE delivered_at < $1 ORDER BY delivered_at LIMIT $2);

-- name: delete_relayed
-- Retention: up to $2 stream relay rows acknowledged before $1.
DELETE FROM stream_relay
WHERE event_id IN (SELECT event_id FROM stream_relay WHERE relayed_at < $1
                   ORDER BY relayed_at LIMIT $2);

-- name: delete_old_samples
-- Retention: up to $2 queue samples older than $1.
DELETE FROM queue_samples
WHERE at IN (SELECT at FROM queue_samples WHERE at < $1 ORDER BY at LIMIT $2);

-- name: delete_gone_workers
-- Retention: up to $2 workers whose last heartbeat is older than $1 (processes long gone).
DELETE FROM workers
WHERE worker_id IN (SELECT worker_id FROM workers WHERE seen_at < $1 ORDER BY seen_at LIMIT $2);

-- name: table_sizes
-- On-disk size of the tables that grow, for ops.
SELECT relname AS table, pg_total_relation_size(oid) AS bytes
FROM pg_class
WHERE relkind IN ('r', 'p')
  AND (relname IN ('measurements_default', 'ingest_requests', 'outbox', 'site_hourly')
       OR relname LIKE 'measurements\_%')
ORDER BY relname;

-- name: outgrown_partitions
-- Partitions of measurements at least twice as large (plus 16 pages) as their statistics say,
-- or with more rows written since their last ANALYZE than twice the rows it counted (plus
-- 1000): analyzed while empty or small (a month created ahead and reached by a database-wide
-- ANALYZE), then filled faster than autovacuum analyzes. Plans made from those statistics
-- scan the whole partition (service/maintenance.py, analyze_outgrown_partitions). The row
-- count catches an ANALYZE that ran while a fill was uncommitted: it counted the fill's pages
-- but none of its rows, so the size test alone would wait until the partition doubled again.
SELECT format('%I.%I', n.nspname, c.relname) AS partition
FROM pg_inherits AS i
JOIN pg_class AS c ON c.oid = i.inhrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables AS s ON s.relid = c.oid
WHERE i.inhparent = 'measurements'::regclass
  AND (pg_relation_size(c.oid) / current_setting('block_size')::int
           > 2 * greatest(c.relpages, 0) + 16
       OR coalesce(s.n_mod_since_analyze, 0) > 2 * greatest(c.reltuples, 0) + 1000)
ORDER BY 1;
