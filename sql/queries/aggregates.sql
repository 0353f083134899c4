-- name: site_ids
-- Every site id, ascending.
SELECT id FROM sites ORDER BY id;

-- name: lock_site_totals
-- Lock (creating on first use) a site's totals row: one drainer updates a site at a time.
INSERT INTO site_totals AS t (site_id, year) VALUES ($1, $2)
ON CONFLICT (site_id) DO UPDATE SET updated_at = t.updated_at
RETURNING year;

-- name: lock_many_site_totals
-- Lock (creating on first use) many sites' totals rows, in site order: every drainer's order.
INSERT INTO site_totals AS t (site_id, year)
SELECT s, $2 FROM unnest($1::bigint[]) AS s ORDER BY s
ON CONFLICT (site_id) DO UPDATE SET updated_at = t.updated_at;

-- name: recompute_hours_find_leaks_and_late_months
-- Recompute the given (site, UTC hour) buckets from raw readings; return each site's change,
-- the hours whose largest window exceeds the leak rate $4 (kg/h) for the site's interval, and
-- the changes to months outside the open part of year $3: months closed (ended more than
-- grace $5 ago) or of another year. Those are rare (late data), so they come back as arrays.
-- A reading counts as the shortest decimal that reads back as its float8 (`::text`, with
-- extra_float_digits > 0, which db.SERVER_SETTINGS pins): what the device sent and what the
-- API shows. A bare `::numeric` cast rounds to 15 digits instead.
-- Formatting and parsing every reading is most of this statement's CPU, so a bucket whose
-- readings all have at most 6 decimals (and |kg| < 1e9) is summed as integer micrograms,
-- exactly: n = round(kg * 1e6) is exact in a float8, and n / 1e6 = kg says the decimal
-- n * 10^-6 (at most 15 significant digits) reads back as kg; two decimals of at most 15
-- digits never read back as the same float8, so it is the shortest one. Any other bucket
-- is summed from the text (the rebuild always is; tests compare the two).
WITH wanted AS (
    SELECT w.site_id, w.hour, coalesce(s.reporting_interval_s, 900) AS interval_s
    FROM unnest($1::bigint[], $2::timestamptz[]) AS w (site_id, hour)
    LEFT JOIN sites AS s ON s.id = w.site_id
), fresh AS (
    SELECT w.site_id, w.hour, f.readings, f.last_ts,
           CASE WHEN f.short THEN trim_scale(f.micro_kg * 0.000001) ELSE (
               SELECT sum(m.methane_kg::text::numeric) FROM measurements AS m
               WHERE m.site_id = w.site_id AND m.ts >= w.hour AND m.ts < w.hour + interval '1 hour'
           ) END AS total_kg,
           f.max_kg * 3600.0 / w.interval_s AS peak_kg_h
    FROM wanted AS w
    CROSS JOIN LATERAL (
        SELECT sum(round(m.methane_kg * 1e6::float8)::int8)
                   FILTER (WHERE abs(m.methane_kg) < 1e9::float8) AS micro_kg,
               bool_and(abs(m.methane_kg) < 1e9::float8
                        AND round(m.methane_kg * 1e6::float8) / 1e6::float8 = m.methane_kg)
                   AS short,
               count(*)::int AS readings, max(m.ts) AS last_ts, max(m.methane_kg) AS max_kg
        FROM measurements AS m
        WHERE m.site_id = w.site_id AND m.ts >= w.hour AND m.ts < w.hour + interval '1 hour'
    ) AS f
    WHERE f.readings > 0
), old AS (
    SELECT h.site_id, h.hour, h.total_kg, h.readings
    FROM site_hourly AS h
    JOIN wanted AS w ON h.site_id = w.site_id AND h.hour = w.hour
), upserted AS (
    INSERT INTO site_hourly AS h (site_id, hour, total_kg, readings)
    SELECT site_id, hour, total_kg, readings FROM fresh
    ON CONFLICT (site_id, hour) DO UPDATE
    SET total_kg = excluded.total_kg, readings = excluded.readings
    WHERE (h.total_kg, h.readings) IS DISTINCT FROM (excluded.total_kg, excluded.readings)
), late AS (
    SELECT f.site_id, date_trunc('month', f.hour, 'UTC') AS month,
           sum(f.total_kg - coalesce(o.total_kg, 0)) AS delta_kg,
           sum(f.readings - coalesce(o.readings, 0))::bigint AS delta_readings
    FROM fresh AS f
    LEFT JOIN old AS o ON o.site_id = f.site_id AND o.hour = f.hour
    WHERE (f.total_kg, f.readings) IS DISTINCT FROM (o.total_kg, o.readings)
      AND (f.hour < date_trunc('month', now() - $5::interval, 'UTC')
           OR date_part('year', f.hour AT TIME ZONE 'UTC')::int <> $3::int)
    GROUP BY 1, 2
), late_by_site AS (
    SELECT site_id,
           array_agg((month AT TIME ZONE 'UTC')::date ORDER BY month) AS late_months,
           array_agg(delta_kg ORDER BY month) AS late_kg,
           array_agg(delta_readings ORDER BY month) AS late_readings,
           array_agg(month + interval '1 month' + $5::interval <= now() ORDER BY month)
               AS late_closed
    FROM late
    GROUP BY site_id
)
SELECT f.site_id,
       count(*)::int AS buckets,
       sum(f.total_kg - coalesce(o.total_kg, 0)) AS delta_kg,
       coalesce(sum(f.total_kg - coalesce(o.total_kg, 0))
                FILTER (WHERE date_part('year', f.hour AT TIME ZONE 'UTC')::int = $3::int), 0)
           AS year_delta_kg,
       sum(f.readings - coalesce(o.readings, 0))::bigint AS delta_readings,
       max(f.last_ts) AS last_ts,
       coalesce(array_agg(f.hour ORDER BY f.hour) FILTER (WHERE f.peak_kg_h > $4), '{}')
           AS leak_hours,
       coalesce(array_agg(f.peak_kg_h ORDER BY f.hour) FILTER (WHERE f.peak_kg_h > $4), '{}')
           AS leak_rates,
       coalesce(min(l.late_months), '{}') AS late_months,
       coalesce(min(l.late_kg), '{}') AS late_kg,
       coalesce(min(l.late_readings), '{}') AS late_readings,
       coalesce(min(l.late_closed), '{}') AS late_closed
FROM fresh AS f
LEFT JOIN old AS o ON o.site_id = f.site_id AND o.hour = f.hour
LEFT JOIN late_by_site AS l ON l.site_id = f.site_id
GROUP BY f.site_id
ORDER BY f.site_id;

-- name: record_restatements
-- Changes to closed months: one restatement row and one report.restated event each.
WITH r AS (
    INSERT INTO report_restatements (site_id, month, delta_kg, delta_readings)
    SELECT * FROM unnest($1::bigint[], $2::date[], $3::numeric[], $4::bigint[])
    RETURNING id, site_id, month, delta_kg, delta_readings, restated_at
)
INSERT INTO outbox (event_type, site_id, payload)
SELECT 'report.restated', site_id, jsonb_build_object(
    'restatement_id', id, 'site_id', site_id, 'period', 'month',
    'period_start', to_char(month, 'YYYY-MM-DD'), 'delta_kg', delta_kg::float8,
    'delta_readings', delta_readings, 'restated_at', restated_at)
FROM r
ORDER BY id;

-- name: year_totals
-- A site's total for each given UTC year, from its buckets (late data for a past year).
SELECT y AS year, coalesce(sum(h.total_kg), 0)::float8 AS year_kg,
       (SELECT emission_limit_kg FROM sites WHERE id = $1) AS limit_kg
FROM unnest($2::int[]) AS y
LEFT JOIN site_hourly AS h
  ON h.site_id = $1
 AND h.hour >= make_timestamptz(y, 1, 1, 0, 0, 0, 'UTC')
 AND h.hour < make_timestamptz(y + 1, 1, 1, 0, 0, 0, 'UTC')
GROUP BY y
ORDER BY y;

-- name: add_to_totals
-- Apply each site's change to its totals; a new calendar year's figure is summed afresh.
UPDATE site_totals AS t
SET lifetime_kg = t.lifetime_kg + d.delta_kg,
    readings = t.readings + d.delta_readings,
    year_kg = CASE WHEN t.year = $6 THEN t.year_kg + d.year_delta_kg ELSE (
        SELECT coalesce(sum(h.total_kg), 0) FROM site_hourly AS h
        WHERE h.site_id = t.site_id
          AND h.hour >= make_timestamptz($6, 1, 1, 0, 0, 0, 'UTC')
          AND h.hour < make_timestamptz($6 + 1, 1, 1, 0, 0, 0, 'UTC')) END,
    year = $6,
    last_reading_at = greatest(t.last_reading_at, d.last_ts),
    updated_at = now()
FROM unnest($1::bigint[], $2::numeric[], $3::bigint[], $4::numeric[], $5::timestamptz[])
     AS d (site_id, delta_kg, delta_readings, year_delta_kg, last_ts)
WHERE t.site_id = d.site_id
RETURNING t.site_id, t.year_kg::float8 AS year_kg,
          (SELECT s.emission_limit_kg FROM sites AS s WHERE s.id = t.site_id) AS limit_kg;

-- name: delete_site_hourly
-- First half of a rebuild: forget every bucket of the site.
DELETE FROM site_hourly WHERE site_id = $1;

-- name: insert_all_hours
-- Second half of a rebuild: every bucket of the site from raw readings, each reading as the
-- recompute counts it (its shortest decimal).
INSERT INTO site_hourly (site_id, hour, total_kg, readings)
SELECT $1, date_trunc('hour', ts, 'UTC'), sum(methane_kg::text::numeric), count(*)
FROM measurements
WHERE site_id = $1
GROUP BY 2;

-- name: reset_totals
-- Totals of a site summed afresh from its buckets (after a rebuild).
UPDATE site_totals
SET lifetime_kg = coalesce((SELECT sum(total_kg) FROM site_hourly WHERE site_id = $1), 0),
    readings = coalesce((SELECT sum(readings) FROM site_hourly WHERE site_id = $1), 0),
    year = $2,
    year_kg = coalesce((
        SELECT sum(total_kg) FROM site_hourly
        WHERE site_id = $1
          AND hour >= make_timestamptz($2, 1, 1, 0, 0, 0, 'UTC')
          AND hour < make_timestamptz($2 + 1, 1, 1, 0, 0, 0, 'UTC')), 0),
    last_reading_at = (SELECT max(ts) FROM measurements WHERE site_id = $1),
    updated_at = now()
WHERE site_id = $1;
