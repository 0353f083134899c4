-- Core schema: sites, partitioned measurements, idempotency records, outbox, aggregates.

CREATE TABLE sites (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    emission_limit_kg double precision NOT NULL
                      CHECK (emission_limit_kg > 0 AND emission_limit_kg < 'Infinity'),
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sites_name_key ON sites (lower(name));

-- One row per site and measurement window, whatever the retries. No foreign key to sites:
-- the ingest transaction checks the site once per batch instead of once per row.
CREATE TABLE measurements (
    site_id     bigint NOT NULL,
    ts          timestamptz NOT NULL,
    methane_kg  double precision NOT NULL
                CHECK (methane_kg >= 0 AND methane_kg < 'Infinity' AND methane_kg <> 'NaN'),
    device_id   text NOT NULL,
    batch_id    uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, ts)
) PARTITION BY RANGE (ts);

-- Catches any reading whose month has no partition yet, so an insert never fails for that.
CREATE TABLE measurements_default PARTITION OF measurements DEFAULT;

-- Create the monthly partition starting at month_start (UTC) unless it exists, moving any
-- rows of that month out of the default partition first. Returns true when it created one.
CREATE FUNCTION ensure_measurement_partition(month_start date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month_start)::date;
    part      text := format('measurements_%s', to_char(first_day, 'YYYY_MM'));
    lo        timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    hi        timestamptz := (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Ingest into the default partition waits until the month's rows have moved.
    LOCK TABLE measurements_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE measurements INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   part);
    EXECUTE format('WITH moved AS (DELETE FROM measurements_default WHERE ts >= $1 AND ts < $2 '
                   'RETURNING *) INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
    EXECUTE format('ALTER TABLE measurements ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    RETURN true;
END
$$;

-- Idempotency records (IETF Idempotency-Key draft), scoped to the sending device.
CREATE TABLE ingest_requests (
    scope         text NOT NULL,
    key           text NOT NULL,
    fingerprint   bytea NOT NULL,
    site_id       bigint NOT NULL,
    batch_id      uuid NOT NULL,
    status_code   smallint NOT NULL,
    response_body bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX ingest_requests_expires_at ON ingest_requests (expires_at);

-- Transactional outbox: written in the ingest transaction, drained by the workers.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   text NOT NULL,
    site_id      bigint NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    processed_at timestamptz,
    dead_at      timestamptz
);
-- The drainers' work list: only due, live events are in it, so it stays small.
CREATE INDEX outbox_due ON outbox (available_at, id)
    WHERE processed_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_site ON outbox (site_id, id);

-- Hourly series, always recomputed from raw measurements for the hours an event touched.
CREATE TABLE site_hourly (
    site_id  bigint NOT NULL,
    hour     timestamptz NOT NULL,
    total_kg numeric NOT NULL,
    readings integer NOT NULL,
    PRIMARY KEY (site_id, hour)
);

-- Per-site totals, derived from site_hourly.
CREATE TABLE site_totals (
    site_id         bigint PRIMARY KEY,
    lifetime_kg     numeric NOT NULL DEFAULT 0,
    year            integer NOT NULL,
    year_kg         numeric NOT NULL DEFAULT 0,
    readings        bigint NOT NULL DEFAULT 0,
    last_reading_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What the read API shows of a site; the current year's figure is zero until the worker has
-- applied a reading of this (UTC) year.
CREATE VIEW site_overview AS
SELECT s.id, s.name, s.emission_limit_kg, s.metadata, s.created_at, s.updated_at,
       coalesce(t.lifetime_kg, 0)::float8 AS lifetime_kg,
       (CASE WHEN t.year = extract(year FROM now() AT TIME ZONE 'UTC')
             THEN t.year_kg ELSE 0 END)::float8 AS year_kg,
       coalesce(t.readings, 0) AS reading_count,
       t.last_reading_at
FROM sites AS s
LEFT JOIN site_totals AS t ON t.site_id = s.id;
