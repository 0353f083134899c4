-- Downstream delivery (webhook subscriptions fed from the outbox) and report restatements.

-- Admin-registered receivers. The secret signs every delivery (Standard Webhooks scheme), so
-- it is kept as given; it is shown once, at creation.
CREATE TABLE webhook_subscriptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url         text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    event_types text[] NOT NULL CHECK (cardinality(event_types) > 0),
    secret      text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    disabled_at timestamptz
);
CREATE INDEX webhook_subscriptions_live ON webhook_subscriptions USING gin (event_types)
    WHERE disabled_at IS NULL;

-- One row per (subscription, outbox event): created by the drain in the transaction that
-- applies the event, sent at least once by the delivery loop. A claim leases the row
-- (available_at moves forward) instead of holding a transaction open across the HTTP call,
-- so a worker killed mid-send only delays the delivery until the lease ends.
CREATE TABLE deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  bigint NOT NULL REFERENCES webhook_subscriptions (id),
    event_id         bigint NOT NULL,
    event_type       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    available_at     timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    last_status_code smallint,
    last_error       text,
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    dead_at          timestamptz,
    UNIQUE (subscription_id, event_id)
);
-- The delivery loop's work list, per subscription (each claim takes the oldest due rows of
-- every subscription that has room, so a backlog of one never hides another's): only
-- undelivered, live rows.
CREATE INDEX deliveries_due ON deliveries (subscription_id, available_at, id)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, id);
CREATE INDEX deliveries_delivered_at ON deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
-- Retention keeps an outbox event while a delivery of it is still owed (or dead-lettered).
CREATE INDEX deliveries_owed ON deliveries (event_id) WHERE delivered_at IS NULL;

-- A change to a closed month (late data applied after the month ended plus a grace period):
-- one row per site, month and drain claim that changed it, with the change it made.
CREATE TABLE report_restatements (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id        bigint NOT NULL,
    month          date NOT NULL,           -- first day of the UTC month
    restated_at    timestamptz NOT NULL DEFAULT now(),
    delta_kg       numeric NOT NULL,
    delta_readings bigint NOT NULL
);
CREATE INDEX report_restatements_site_month ON report_restatements (site_id, month, id);
