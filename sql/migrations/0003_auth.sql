-- Device keys (ingest) and operator tokens (ops writes). Only SHA-256 hashes of the secrets
-- are stored: they are 256-bit random values, so a plain hash cannot be reversed or guessed.

CREATE TABLE device_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   text NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
    site_ids    bigint[] NOT NULL CHECK (cardinality(site_ids) > 0),
    name        text,
    key_prefix  text NOT NULL,          -- shown in listings to tell keys apart
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX device_keys_device ON device_keys (device_id);

CREATE TABLE operator_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
