-- name: raise_alert
-- Raise an alert unless this site already has one with this dedupe key, and write its event
-- ($5) to the outbox in the same statement; returns the new alert's id.
WITH raised AS (
    INSERT INTO alerts (site_id, kind, dedupe_key, details)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (site_id, dedupe_key) DO NOTHING
    RETURNING id, site_id, kind, details, raised_at
), event AS (
    INSERT INTO outbox (event_type, site_id, payload)
    SELECT $5, site_id, jsonb_build_object(
        'alert_id', id, 'site_id', site_id, 'kind', kind, 'details', details,
        'raised_at', raised_at)
    FROM raised
)
SELECT id FROM raised;

-- name: site_for_alerts
-- What the threshold rules need of a site: its limit and its year figure.
SELECT s.emission_limit_kg, t.year, t.year_kg::float8 AS year_kg
FROM sites AS s
JOIN site_totals AS t ON t.site_id = s.id
WHERE s.id = $1;

-- name: stale_sites
-- Sites with readings whose newest is older than $1.
SELECT site_id, last_reading_at FROM site_totals
WHERE last_reading_at IS NOT NULL AND last_reading_at < now() - $1::interval;

-- name: list_alerts
-- Alerts newest first before cursor $1, by state $2 (open | acknowledged | all), site $3,
-- kind $5 (null: any).
SELECT id, site_id, kind, dedupe_key, details, raised_at, acknowledged_at, acknowledged_by
FROM alerts
WHERE id < $1
  AND ($3::bigint IS NULL OR site_id = $3)
  AND ($5::text IS NULL OR kind = $5)
  AND CASE $2::text WHEN 'open' THEN acknowledged_at IS NULL
                    WHEN 'acknowledged' THEN acknowledged_at IS NOT NULL
                    ELSE true END
ORDER BY id DESC
LIMIT $4;

-- name: count_alerts
-- Open and acknowledged alerts, of site $1 or of all sites, of kind $2 or of any.
SELECT count(*) FILTER (WHERE acknowledged_at IS NULL)::int AS open,
       count(*) FILTER (WHERE acknowledged_at IS NOT NULL)::int AS acknowledged
FROM alerts
WHERE ($1::bigint IS NULL OR site_id = $1) AND ($2::text IS NULL OR kind = $2);

-- name: acknowledge
-- Acknowledge an alert (the first acknowledgement is kept).
UPDATE alerts
SET acknowledged_at = coalesce(acknowledged_at, now()),
    acknowledged_by = coalesce(acknowledged_by, $2)
WHERE id = $1
RETURNING id, site_id, kind, dedupe_key, details, raised_at, acknowledged_at, acknowledged_by;

-- name: alert_groups
-- Alerts by (site, kind), in state $1 (open | acknowledged | all), of site $2 and kind $3 (null:
-- any): how many, how many open, the first and last raised; the most recent group first, up
-- to $4 groups.
SELECT site_id, kind, count(*)::int AS count,
       count(*) FILTER (WHERE acknowledged_at IS NULL)::int AS open,
       min(raised_at) AS first_raised_at, max(raised_at) AS last_raised_at
FROM alerts
WHERE ($2::bigint IS NULL OR site_id = $2)
  AND ($3::text IS NULL OR kind = $3)
  AND CASE $1::text WHEN 'open' THEN acknowledged_at IS NULL
                    WHEN 'acknowledged' THEN acknowledged_at IS NOT NULL
                    ELSE true END
GROUP BY site_id, kind
ORDER BY max(raised_at) DESC, site_id, kind
LIMIT $4;

-- name: acknowledge_many
-- Acknowledge by $3 the open alerts with ids $1, or (ids null) of site $2 and kind $4 (either
-- null: any); already acknowledged ones keep their first acknowledgement. Returns those
-- acknowledged now.
UPDATE alerts
SET acknowledged_at = now(), acknowledged_by = $3
WHERE acknowledged_at IS NULL
  AND ($1::bigint[] IS NULL OR id = ANY ($1))
  AND ($2::bigint IS NULL OR site_id = $2)
  AND ($4::text IS NULL OR kind = $4)
RETURNING id;
