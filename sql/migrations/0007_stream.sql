-- The outbox relayed to NATS JetStream (service/stream.py), when NATS_URL is set.

-- One row per outbox event to publish: queued by the drain in the transaction that applies
-- the event (only while the stream is enabled), published at least once by the relay loop.
-- A claim leases the row (available_at moves forward) instead of holding a transaction open
-- across the publish, so a worker killed mid-publish only delays the event until the lease
-- ends; the republish carries the same Nats-Msg-Id, and JetStream drops it within its
-- duplicate window (which outlasts the lease: settings refuse anything else).
CREATE TABLE stream_relay (
    event_id     bigint PRIMARY KEY,
    event_type   text NOT NULL,            -- as consumers see it (batch.accepted, ...)
    queued_at    timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    relayed_at   timestamptz               -- JetStream acknowledged the publish
);
-- The relay's work list: only rows not yet acknowledged.
CREATE INDEX stream_relay_due ON stream_relay (available_at, event_id) WHERE relayed_at IS NULL;
CREATE INDEX stream_relay_relayed_at ON stream_relay (relayed_at) WHERE relayed_at IS NOT NULL;
