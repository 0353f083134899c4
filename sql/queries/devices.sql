-- name: find_device_key
-- The live device key with this hash, if any.
SELECT id, device_id, site_ids FROM device_keys WHERE key_hash = $1 AND revoked_at IS NULL;

-- name: insert_device_key
-- A new device key (its secret is shown once by the caller, only the hash is kept).
INSERT INTO device_keys (device_id, site_ids, name, key_prefix, key_hash, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, device_id, site_ids, name, key_prefix, created_at, created_by, revoked_at;

-- name: list_device_keys
-- Keys, newest first, optionally of one site; never the secret.
SELECT id, device_id, site_ids, name, key_prefix, created_at, created_by, revoked_at
FROM device_keys
WHERE $1::bigint IS NULL OR $1 = ANY (site_ids)
ORDER BY id DESC;

-- name: revoke_device_key
-- Revoke a key; the next request with it is refused.
UPDATE device_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1
RETURNING id, device_id, site_ids, name, key_prefix, created_at, created_by, revoked_at;

-- name: missing_sites
-- Which of the given site ids do not exist.
SELECT s FROM unnest($1::bigint[]) AS s WHERE NOT EXISTS (SELECT 1 FROM sites WHERE id = s);
