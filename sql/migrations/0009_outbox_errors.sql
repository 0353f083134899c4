-- Every failed attempt of an outbox event, for triage: the last 20 per event (the drain trims
-- older ones), deleted with the event by retention (ON DELETE CASCADE).

CREATE TABLE outbox_errors (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempt  integer NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    worker   text NOT NULL,
    error    text NOT NULL
);
-- An event's errors in order; also what the cascade from outbox deletes looks up.
CREATE INDEX outbox_errors_event ON outbox_errors (event_id, id);
-- The queue history's failed attempts per interval (every ~10 s, by time).
CREATE INDEX outbox_errors_at ON outbox_errors (at);
