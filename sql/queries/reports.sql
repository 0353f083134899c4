-- name: report_site
-- A site's limit and window length, and the time of its first reading ever (NULL: none yet).
SELECT s.id, s.emission_limit_kg, s.reporting_interval_s,
       (SELECT min(m.ts) FROM measurements AS m WHERE m.site_id = s.id) AS first_reading
FROM sites AS s
WHERE s.id = $1;

-- name: period_totals
-- Per period [$2[i], $3[i]) of site $1, from the hourly buckets: total, readings, peak hour.
SELECT p.i, coalesce(t.total_kg, 0)::float8 AS total_kg, coalesce(t.readings, 0) AS readings,
       peak.hour AS peak_hour, peak.total_kg::float8 AS peak_kg
FROM unnest($2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS p (lo, hi, i)
LEFT JOIN LATERAL (
    SELECT sum(h.total_kg) AS total_kg, sum(h.readings)::bigint AS readings
    FROM site_hourly AS h
    WHERE h.site_id = $1 AND h.hour >= p.lo AND h.hour < p.hi
) AS t ON true
LEFT JOIN LATERAL (
    SELECT h.hour, h.total_kg
    FROM site_hourly AS h
    WHERE h.site_id = $1 AND h.hour >= p.lo AND h.hour < p.hi
    ORDER BY h.total_kg DESC, h.hour
    LIMIT 1
) AS peak ON true
ORDER BY p.i;

-- name: period_windows
-- Per period, windows $2[i] <= w < $3[i] of $4 seconds (w = floor(epoch(ts) / $4)): how many
-- have a reading, and the runs of at least $5 missing ones (first $6, their count, the longest).
WITH periods AS (
    SELECT lo, hi, i FROM unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY AS p (lo, hi, i)
),
received AS MATERIALIZED (
    -- A range scan of the primary key (site_id, ts) in each partition the range touches.
    SELECT p.i, w.w
    FROM periods AS p
    CROSS JOIN LATERAL (
        SELECT DISTINCT floor(extract(epoch FROM m.ts) / $4)::bigint AS w
        FROM measurements AS m
        WHERE m.site_id = $1
          AND m.ts >= to_timestamp(p.lo * $4::bigint)
          AND m.ts < to_timestamp(p.hi * $4::bigint)
    ) AS w
),
runs AS (
    -- The windows just outside the period count as received, so leading and trailing runs
    -- of missing windows are gaps too.
    SELECT i, lag(w) OVER (PARTITION BY i ORDER BY w) + 1 AS first_missing,
           w - lag(w) OVER (PARTITION BY i ORDER BY w) - 1 AS missing
    FROM (SELECT i, w FROM received
          UNION ALL SELECT i, lo - 1 FROM periods
          UNION ALL SELECT i, hi FROM periods) AS edges
),
gaps AS (
    SELECT i, first_missing, missing,
           row_number() OVER (PARTITION BY i ORDER BY first_missing) AS n
    FROM runs
    WHERE missing >= greatest($5::bigint, 1)
)
SELECT p.i,
       (SELECT count(*) FROM received AS r WHERE r.i = p.i) AS received,
       (SELECT count(*) FROM gaps AS g WHERE g.i = p.i) AS gap_count,
       (SELECT coalesce(max(g.missing), 0) FROM gaps AS g WHERE g.i = p.i) AS longest_gap,
       coalesce((SELECT array_agg(g.first_missing ORDER BY g.n) FROM gaps AS g
                 WHERE g.i = p.i AND g.n <= $6), '{}') AS gap_starts,
       coalesce((SELECT array_agg(g.missing ORDER BY g.n) FROM gaps AS g
                 WHERE g.i = p.i AND g.n <= $6), '{}') AS gap_lengths
FROM periods AS p
ORDER BY p.i;

-- name: period_restatements
-- Per period [$2[i], $3[i]) of site $1: restatements of its months, and the latest.
SELECT p.i, count(r.id) AS restatements, max(r.restated_at) AS last_restated_at
FROM unnest($2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS p (lo, hi, i)
LEFT JOIN report_restatements AS r
       ON r.site_id = $1
      AND r.month >= (p.lo AT TIME ZONE 'UTC')::date
      AND r.month < (p.hi AT TIME ZONE 'UTC')::date
GROUP BY p.i
ORDER BY p.i;
