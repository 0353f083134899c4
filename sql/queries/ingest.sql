-- name: try_lock_key
-- Mark this idempotency key in flight for the transaction; false when another request holds it.
SELECT pg_try_advisory_xact_lock($1::bigint);

-- name: find_answer_check_site_and_key
-- The stored request for a key (any age), whether the site exists and whether the device key
-- $4 is still live (NULL: no device key to check), in one round trip.
SELECT EXISTS (SELECT 1 FROM sites WHERE id = $3) AS site_exists,
       ($4::bigint IS NULL OR EXISTS (
           SELECT 1 FROM device_keys WHERE id = $4 AND revoked_at IS NULL)) AS key_live,
       r.fingerprint, r.status_code, r.response_body, r.expires_at <= now() AS expired
FROM (SELECT 1) AS one
LEFT JOIN ingest_requests AS r ON r.scope = $1 AND r.key = $2;

-- name: insert_new_batch_event_and_answer
-- Fast path, the whole request in one statement run as its own transaction (one round trip):
-- the key's lock $16 (as try_lock_key), its stored request, the site and the device key $15
-- (as find_answer_check_site_and_key); then, with the lock, for a key never stored, a known
-- site, a live device key and no stored reading within the batch's span (the usual case),
-- plain inserts of every reading (no per-row conflict check), the outbox event, and the
-- answer under the key ($13, built before: everything new, nothing duplicate). Otherwise it
-- writes nothing and `fast` is false. $4/$5 are array literals in text ('{...}'): parsing them
-- costs less than binary arrays' per-element encoding. The event's hours are the UTC hours the
-- readings fall in: date_bin from the epoch is plain arithmetic on the instant, ~85 µs less
-- per 500 readings than date_trunc('hour', ts, 'UTC'), which converts each through the zone.
-- The statement's snapshot is taken before its lock: a request with the same key may commit
-- in between, unseen. Its record then makes the answer's plain INSERT raise unique_violation,
-- as a window that another transaction stores meanwhile does (after waiting for it): the
-- statement writes nothing and the caller starts over on the careful path, in a transaction,
-- which sees that answer.
WITH found AS (
    SELECT pg_try_advisory_xact_lock($16::bigint) AS locked,
           EXISTS (SELECT 1 FROM sites WHERE id = $3) AS site_exists,
           ($15::bigint IS NULL OR EXISTS (
               SELECT 1 FROM device_keys WHERE id = $15 AND revoked_at IS NULL)) AS key_live,
           r.fingerprint, r.status_code, r.response_body, r.expires_at <= now() AS expired
    FROM (SELECT 1) AS one
    LEFT JOIN ingest_requests AS r ON r.scope = $1 AND r.key = $2
), go AS (
    SELECT f.locked AND f.key_live AND f.site_exists AND f.fingerprint IS NULL AND NOT EXISTS (
        SELECT 1 FROM measurements WHERE site_id = $3 AND ts >= $9 AND ts <= $10
    ) AS fast
    FROM found AS f
), input AS (
    SELECT t.ts, t.kg FROM unnest($4::text::timestamptz[], $5::text::float8[]) AS t (ts, kg)
    WHERE (SELECT fast FROM go)
), inserted AS (
    INSERT INTO measurements (site_id, ts, methane_kg, device_id, batch_id)
    SELECT $3, ts, kg, $6, $7 FROM input ORDER BY ts
), event AS (
    INSERT INTO outbox (event_type, site_id, payload)
    SELECT 'measurements.accepted', $3, jsonb_build_object(
        'batch_id', $7::uuid,
        'request_id', $8::text,
        'device_id', $6::text,
        'accepted', count(*),
        'first_ts', $9::timestamptz,
        'last_ts', $10::timestamptz,
        'hours', jsonb_agg(DISTINCT date_bin('1 hour', ts, timestamptz 'epoch')))
    FROM input
    HAVING count(*) > 0
    RETURNING id
), saved AS (
    INSERT INTO ingest_requests
        (scope, key, fingerprint, site_id, batch_id, status_code, response_body, expires_at)
    SELECT $1, $2, $11, $3, $7, $12, $13, now() + $14::interval
    WHERE (SELECT fast FROM go)
)
SELECT f.locked, f.site_exists, f.key_live, f.fingerprint, f.status_code, f.response_body,
       f.expired, (SELECT fast FROM go) AS fast, (SELECT id FROM event) AS event_id
FROM found AS f;

-- name: insert_new_batches_events_and_answers
-- The fast path of several requests in one statement, one transaction (service/ingest.py,
-- FastLane): insert_new_batch_event_and_answer for each member n of the group, its
-- arguments as arrays ($1-$12, one element per member), its readings in $14/$15 (array
-- literals, as there) with their member in $13. Each member is judged on its own: its
-- lock, stored answer, site, device key and stored windows; one that is not `fast` writes
-- nothing, the others commit. Readings are inserted in (site, window) order, every
-- group's order, so two groups wait on each other's windows in one direction only. A
-- member whose window or key another transaction (or another member) stores meanwhile
-- raises unique_violation for the whole group, which then wrote nothing: each member
-- starts over on its own statement.
WITH member AS (
    SELECT *
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::uuid[], $6::text[],
                $7::timestamptz[], $8::timestamptz[], $9::bytea[], $10::bytea[],
                $11::bigint[], $12::bigint[], $16::interval[])
        WITH ORDINALITY AS m (scope, key, site_id, device_id, batch_id, request_id, first_ts,
                              last_ts, fingerprint, body, key_id, lock_id, retention, n)
), found AS (
    SELECT m.*, pg_try_advisory_xact_lock(m.lock_id) AS locked,
           EXISTS (SELECT 1 FROM sites WHERE id = m.site_id) AS site_exists,
           (m.key_id IS NULL OR EXISTS (
               SELECT 1 FROM device_keys WHERE id = m.key_id AND revoked_at IS NULL)) AS key_live,
           r.fingerprint AS stored_fingerprint, r.status_code, r.response_body,
           r.expires_at <= now() AS expired
    FROM member AS m
    LEFT JOIN ingest_requests AS r ON r.scope = m.scope AND r.key = m.key
), go AS (
    SELECT f.*, f.locked AND f.key_live AND f.site_exists AND f.stored_fingerprint IS NULL
                AND NOT EXISTS (
                    SELECT 1 FROM measurements
                    WHERE site_id = f.site_id AND ts >= f.first_ts AND ts <= f.last_ts
                ) AS fast
    FROM found AS f
), input AS (
    SELECT g.n, g.site_id, g.device_id, g.batch_id, t.ts, t.kg
    FROM unnest($13::int[], $14::text::timestamptz[], $15::text::float8[]) AS t (n, ts, kg)
    JOIN go AS g ON g.n = t.n
    WHERE g.fast
), inserted AS (
    INSERT INTO measurements (site_id, ts, methane_kg, device_id, batch_id)
    SELECT site_id, ts, kg, device_id, batch_id FROM input ORDER BY site_id, ts
), event AS (
    INSERT INTO outbox (event_type, site_id, payload)
    SELECT 'measurements.accepted', g.site_id, jsonb_build_object(
        'batch_id', g.batch_id,
        'request_id', g.request_id,
        'device_id', g.device_id,
        'accepted', count(*),
        'first_ts', g.first_ts,
        'last_ts', g.last_ts,
        'hours', jsonb_agg(DISTINCT date_bin('1 hour', i.ts, timestamptz 'epoch')))
    FROM input AS i
    JOIN go AS g ON g.n = i.n
    GROUP BY g.n, g.site_id, g.batch_id, g.request_id, g.device_id, g.first_ts, g.last_ts
    ORDER BY g.n
    RETURNING id, (payload ->> 'batch_id')::uuid AS batch_id
), saved AS (
    INSERT INTO ingest_requests
        (scope, key, fingerprint, site_id, batch_id, status_code, response_body, expires_at)
    SELECT scope, key, fingerprint, site_id, batch_id, $17, body, now() + retention
    FROM go
    WHERE fast
)
SELECT g.n, g.locked, g.site_exists, g.key_live, g.stored_fingerprint AS fingerprint,
       g.status_code, g.response_body, g.expired, g.fast, e.id AS event_id
FROM go AS g
LEFT JOIN event AS e ON e.batch_id = g.batch_id
ORDER BY g.n;

-- name: insert_new_readings_and_event_list_others
-- Careful path: insert what is new, skipping stored windows; write the outbox event when
-- anything was new; list the rest (duplicates and conflicts) with their stored values.
-- $2/$3 as in insert_new_batch_event_and_answer.
WITH input AS (
    SELECT t.ts, t.kg FROM unnest($2::text::timestamptz[], $3::text::float8[]) AS t (ts, kg)
), inserted AS (
    INSERT INTO measurements (site_id, ts, methane_kg, device_id, batch_id)
    SELECT $1, ts, kg, $4, $5 FROM input ORDER BY ts
    ON CONFLICT (site_id, ts) DO NOTHING
    RETURNING ts
), event AS (
    INSERT INTO outbox (event_type, site_id, payload)
    SELECT 'measurements.accepted', $1, jsonb_build_object(
        'batch_id', $5::uuid,
        'request_id', $6::text,
        'device_id', $4::text,
        'accepted', count(*),
        'first_ts', min(ts),
        'last_ts', max(ts),
        'hours', (SELECT jsonb_agg(DISTINCT date_bin('1 hour', ts, timestamptz 'epoch'))
                  FROM inserted))
    FROM inserted
    HAVING count(*) > 0
    RETURNING id
)
SELECT (SELECT count(*) FROM inserted) AS accepted,
       (SELECT id FROM event) AS event_id,
       coalesce(array_agg(i.ts ORDER BY i.ts), '{}') AS other_ts,
       coalesce(array_agg(i.kg ORDER BY i.ts), '{}') AS other_received,
       coalesce(array_agg(m.methane_kg ORDER BY i.ts), '{}') AS other_stored
FROM input AS i
LEFT JOIN measurements AS m ON m.site_id = $1 AND m.ts = i.ts
WHERE i.ts NOT IN (SELECT ts FROM inserted);

-- name: stored_values
-- Stored values for windows another transaction committed while this batch was inserting.
SELECT ts, methane_kg FROM measurements WHERE site_id = $1 AND ts = ANY($2::timestamptz[]);

-- name: save_answer
-- Record the answer under its key; an expired record with the same key is replaced.
INSERT INTO ingest_requests
    (scope, key, fingerprint, site_id, batch_id, status_code, response_body, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval)
ON CONFLICT (scope, key) DO UPDATE
SET fingerprint = excluded.fingerprint, site_id = excluded.site_id,
    batch_id = excluded.batch_id, status_code = excluded.status_code,
    response_body = excluded.response_body, created_at = now(),
    expires_at = excluded.expires_at
WHERE ingest_requests.expires_at <= now();
