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
    failed            bigint NOT NULL,    -- failed attempts in the interval (outbox_errors)
    deliveries_sent   bigint NOT NULL,
    deliveries_failed bigint NOT NULL,
    deliveries_dead   bigint NOT NULL
);

-- What the worker is working on now (NULL: idle) and since when, written by its heartbeat.
ALTER TABLE workers ADD COLUMN claim text, ADD COLUMN claim_since timestamptz;
