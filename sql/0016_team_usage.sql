-- Team usage (issue 15): a member reads their own calls in a team, newest first, keyset-paginated like the
-- personal request log (proxy_requests_user_time_idx): one index range on (team, member), never a walk through
-- the member's personal rows or the other members'. The whole team's log uses proxy_requests_org_time_idx
-- (sql/0014). Migrations run in a transaction, so this is a plain CREATE INDEX (only team rows: small).
CREATE INDEX IF NOT EXISTS proxy_requests_org_user_time_idx
    ON proxy_requests (org_id, user_id, created_at DESC, id DESC) WHERE org_id IS NOT NULL;

-- A team's quota alert goes to the team's owner (alerts/record.py): the row is the owner's (user_id), kept apart
-- from the owner's personal alerts of the same period by org_id (no foreign key: like the usage rows, it outlives
-- a deleted team; its dedup key names the team, so a transfer of ownership does not fire it again).
ALTER TABLE alerts ADD COLUMN org_id UUID;
