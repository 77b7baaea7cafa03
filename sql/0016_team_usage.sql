-- Team usage (issue 15): a member reads their own calls in a team, newest first, keyset-paginated like the
-- personal request log (proxy_requests_user_time_idx): one index range on (team, member), never a walk through
-- the member's personal rows or the other members'. The whole team's log uses proxy_requests_org_time_idx
-- (sql/0014). Migrations run in a transaction, so this is a plain CREATE INDEX (only team rows: small).
CREATE INDEX IF NOT EXISTS proxy_requests_org_user_time_idx
    ON proxy_requests (org_id, user_id, created_at DESC, id DESC) WHERE org_id IS NOT NULL;
