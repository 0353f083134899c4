-- Roles on operator tokens (viewer < operator < admin), and the role of whoever acted in the
-- audit trail. Every token and every action before this migration was an admin's, so existing
-- rows are 'admin'; the default stays so that a process still running the previous release
-- during a rolling deploy keeps writing rows that are true (its tokens are all admins).

ALTER TABLE operator_tokens ADD COLUMN role text NOT NULL DEFAULT 'admin'
    CHECK (role IN ('viewer', 'operator', 'admin'));

ALTER TABLE ops_audit ADD COLUMN role text NOT NULL DEFAULT 'admin'
    CHECK (role IN ('viewer', 'operator', 'admin'));

-- The audit listing, newest first, filtered by who or by what.
CREATE INDEX ops_audit_actor ON ops_audit (actor, id);
CREATE INDEX ops_audit_action ON ops_audit (action, id);
