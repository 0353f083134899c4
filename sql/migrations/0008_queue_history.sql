-- Queue history: one sample of the outbox and the deliveries per interval (QUEUE_SAMPLE_S),
-- written by whichever worker gets there first, kept QUEUE_HISTORY_DAYS; and what each worker
-- is doing now, for the workers table.

-- `at` is the start of the sample's bucket (date_bin of the database clock): the primary key
-- makes one row per bucket whatever the number of workers (the others' inserts do nothing).
-- Gauges are measured during [at, at + interval_s); counters count [at - interval_s, at),
-- an interval that had ended when the sample was taken, so buckets never overlap.
CREATE TABLE queue_samples (
    at                timestamptz PRIMARY KEY,
    interval_s        integer NOT NULL CHECK (interval_s > 0),
    pending           bigint NOT NULL,
    backoff           bigint NOT NULL,
    dead              bigint NOT NULL,
    oldest_pending_s  double precision NOT NULL,
    processed         bigint NOT NULL,    -- events applied in the interval
    failed            bigint NOT NULL,    -- events with a failed attempt in the interval
    deliveries_sent   bigint NOT NULL,
    deliveries_failed bigint NOT NULL,
    deliveries_dead   bigint NOT NULL
);

-- When an event last failed: "failed per interval" is counted from the table, exactly, by
-- any worker. Set by a trigger, not by the drain's SQL, so every path that counts an attempt
-- (attempts going up) records it. Rare (failures only), so the index stays small.
ALTER TABLE outbox ADD COLUMN last_failed_at timestamptz;
CREATE INDEX outbox_failed_at ON outbox (last_failed_at) WHERE last_failed_at IS NOT NULL;

CREATE FUNCTION outbox_failed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_failed_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER outbox_failed_at BEFORE UPDATE OF attempts ON outbox
FOR EACH ROW WHEN (NEW.attempts > OLD.attempts) EXECUTE FUNCTION outbox_failed_at();

-- What the worker is working on now (NULL: idle) and since when, written by its heartbeat.
ALTER TABLE workers ADD COLUMN claim text, ADD COLUMN claim_since timestamptz;
