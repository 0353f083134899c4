-- name: record
-- Record an operator action.
INSERT INTO ops_audit (actor, action, params, affected, dry_run)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, at;
