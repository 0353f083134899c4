-- Worker bookkeeping, ops audit trail, and the indexes the queue view reads.

-- One row per worker process, touched by every sweep: the dashboard's heartbeat.
CREATE TABLE workers (
    worker_id  text PRIMARY KEY,
    hostname   text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now(),
    drained    bigint NOT NULL DEFAULT 0
);

-- Every replay and rebuild: when, who (token name), what, how many.
CREATE TABLE ops_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    params     jsonb NOT NULL,
    affected   integer NOT NULL,
    dry_run    boolean NOT NULL DEFAULT false
);

-- "processed in the last minute / hour" and retention of processed rows.
CREATE INDEX outbox_processed_at ON outbox (processed_at) WHERE processed_at IS NOT NULL;
-- The dead-letter list.
CREATE INDEX outbox_dead ON outbox (dead_at, id) WHERE dead_at IS NOT NULL;
