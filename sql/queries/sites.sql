-- name: insert_site
-- Create a site; the caller maps a unique violation on its name to a 409.
INSERT INTO sites (name, emission_limit_kg, metadata, reporting_interval_s)
VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: update_site
-- Change the given fields of a site (NULL leaves a field as it is).
UPDATE sites
SET name = coalesce($2, name),
    emission_limit_kg = coalesce($3, emission_limit_kg),
    metadata = coalesce($4, metadata),
    reporting_interval_s = coalesce($5, reporting_interval_s),
    updated_at = now()
WHERE id = $1
RETURNING id;

-- name: site_view
-- One site with its totals and its dead-lettered outbox events and webhook deliveries (both
-- counted from partial indexes: outbox_dead, and deliveries_owed, which holds every dead row).
SELECT v.*,
       (SELECT count(*) FROM outbox AS o
        WHERE o.dead_at IS NOT NULL AND o.site_id = v.id) AS dead_events,
       (SELECT count(*) FROM deliveries AS d JOIN outbox AS o ON o.id = d.event_id
        WHERE d.delivered_at IS NULL AND d.dead_at IS NOT NULL AND o.site_id = v.id)
           AS dead_deliveries
FROM site_overview AS v
WHERE v.id = $1;

-- name: list_sites
-- A page of sites by id after the cursor $1 (keyset: stable while sites are added), with dead
-- counts as in site_view, grouped once over the dead rows rather than looked up per site.
WITH page AS (
    SELECT * FROM site_overview WHERE id > $1 ORDER BY id LIMIT $2
), dead_events AS (
    SELECT site_id, count(*) AS n FROM outbox
    WHERE dead_at IS NOT NULL AND site_id IN (SELECT id FROM page)
    GROUP BY site_id
), dead_deliveries AS (
    SELECT o.site_id, count(*) AS n
    FROM deliveries AS d JOIN outbox AS o ON o.id = d.event_id
    WHERE d.delivered_at IS NULL AND d.dead_at IS NOT NULL
      AND o.site_id IN (SELECT id FROM page)
    GROUP BY o.site_id
)
SELECT p.*, coalesce(e.n, 0) AS dead_events, coalesce(dd.n, 0) AS dead_deliveries
FROM page AS p
LEFT JOIN dead_events AS e ON e.site_id = p.id
LEFT JOIN dead_deliveries AS dd ON dd.site_id = p.id
ORDER BY p.id;

-- name: hourly
-- The hourly series of a site in [$2, $3).
SELECT hour, total_kg::float8 AS total_kg, readings
FROM site_hourly
WHERE site_id = $1 AND hour >= $2 AND hour < $3
ORDER BY hour;
