-- name: record
-- Record an operator action: who (token name and role), what, with what, how many rows.
INSERT INTO ops_audit (actor, role, action, params, affected, dry_run)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, at;

-- name: list_audit
-- The trail newest first, below the cursor $1, optionally by actor, action and [from, to).
SELECT id, at, actor, role, action, params, affected, dry_run
FROM ops_audit
WHERE id < $1
  AND ($2::text IS NULL OR actor = $2)
  AND ($3::text IS NULL OR action = $3)
  AND ($4::timestamptz IS NULL OR at >= $4)
  AND ($5::timestamptz IS NULL OR at < $5)
ORDER BY id DESC
LIMIT $6;
