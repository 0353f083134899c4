-- Pausing a webhook subscription (an operator action, audited): the drain still queues its
-- deliveries, the delivery loop leaves them pending until it is resumed (the backlog is kept
-- and sent then). Unlike disabling, pausing is undone.
ALTER TABLE webhook_subscriptions ADD COLUMN paused_at timestamptz;
ALTER TABLE webhook_subscriptions ADD COLUMN paused_by text;

-- The deliveries list across subscriptions, by event type, newest first.
CREATE INDEX deliveries_event_type ON deliveries (event_type, id);

-- The alerts grouped by site and kind, and their bulk acknowledgement by group.
CREATE INDEX alerts_site_kind ON alerts (site_id, kind, id);
