-- Alerts raised by the drain in the same transaction that changes the aggregates; the unique
-- (site_id, dedupe_key) makes each crossing fire once, whatever replays or rebuilds happen.

ALTER TABLE sites ADD COLUMN reporting_interval_s integer NOT NULL DEFAULT 900
    CHECK (reporting_interval_s BETWEEN 1 AND 86400);

CREATE OR REPLACE VIEW site_overview AS
SELECT s.id, s.name, s.emission_limit_kg, s.metadata, s.created_at, s.updated_at,
       coalesce(t.lifetime_kg, 0)::float8 AS lifetime_kg,
       (CASE WHEN t.year = extract(year FROM now() AT TIME ZONE 'UTC')
             THEN t.year_kg ELSE 0 END)::float8 AS year_kg,
       coalesce(t.readings, 0) AS reading_count,
       t.last_reading_at,
       s.reporting_interval_s
FROM sites AS s
LEFT JOIN site_totals AS t ON t.site_id = s.id;

CREATE TABLE alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id         bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('threshold', 'leak', 'stale')),
    dedupe_key      text NOT NULL,
    details         jsonb NOT NULL,
    raised_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    UNIQUE (site_id, dedupe_key)
);
CREATE INDEX alerts_open ON alerts (id) WHERE acknowledged_at IS NULL;
