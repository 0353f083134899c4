-- name: find_operator_token
-- The name and role of the live operator token with this hash, if any.
SELECT name, role FROM operator_tokens WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: insert_operator_token
-- A new named operator token with its role (hash only).
INSERT INTO operator_tokens (name, token_hash, role) VALUES ($1, $2, $3)
RETURNING id, created_at;

-- name: revoke_operator_token
-- Revoke an operator token by name.
UPDATE operator_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1 RETURNING id;
