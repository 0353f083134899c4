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
-- One site with its totals.
SELECT * FROM site_overview WHERE id = $1;

-- name: list_sites
-- A page of sites by id after the cursor $1 (keyset: stable while sites are added).
SELECT * FROM site_overview WHERE id > $1 ORDER BY id LIMIT $2;

-- name: hourly
-- The hourly series of a site in [$2, $3).
SELECT hour, total_kg::float8 AS total_kg, readings
FROM site_hourly
WHERE site_id = $1 AND hour >= $2 AND hour < $3
ORDER BY hour;
