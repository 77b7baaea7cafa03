-- Teams (issue 15, part 3): billing belongs to the organisation, and per-member monthly limits.
--
-- A Team subscription is bought by a user; when its buyer creates their organisation, the running subscription and
-- its open invoices move to the organisation (org_id set) and the organisation's own plan becomes the team's,
-- while the owner's personal plan falls to Free (api/orgs.create, in one transaction). From then on the
-- organisation's plan (organisations.plan) is what its seats, quota, burst and keys run on, and only its owner
-- pays, changes plan or cancels. A subscription or invoice with org_id NULL is personal, as every row before this
-- file was. An invoice's user_id stays who paid it (the buyer named on it).

ALTER TABLE organisations
    ADD COLUMN plan TEXT NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'starter', 'pro', 'team')),
    -- An admin's overrides for the team, like users' (NULL: the plan's own numbers).
    ADD COLUMN burst_per_minute_override INTEGER CHECK (burst_per_minute_override > 0),
    ADD COLUMN monthly_requests_override INTEGER CHECK (monthly_requests_override >= 0);

-- A deleted organisation leaves its billing records to their buyer (api/orgs.delete hands a running subscription
-- back first); the invoices are kept either way.
ALTER TABLE subscriptions ADD COLUMN org_id UUID REFERENCES organisations (id) ON DELETE SET NULL;
CREATE INDEX subscriptions_org_idx ON subscriptions (org_id, created_at DESC) WHERE org_id IS NOT NULL;
ALTER TABLE invoices ADD COLUMN org_id UUID REFERENCES organisations (id) ON DELETE SET NULL;
CREATE INDEX invoices_org_idx ON invoices (org_id, created_at DESC) WHERE org_id IS NOT NULL;

-- Teams made before this file ran on their owner's plan: a team owner's Team plan, running subscription and its
-- open invoices (pending, or paid for a period not started yet) move to the team, and the owner is on Free.
UPDATE organisations o SET plan = u.plan FROM users u WHERE u.id = o.owner_id AND u.plan = 'team';
UPDATE subscriptions s SET org_id = o.id FROM organisations o
WHERE s.user_id = o.owner_id AND o.plan = 'team' AND s.status = 'active' AND s.current_period_end > now();
UPDATE invoices i SET org_id = s.org_id FROM subscriptions s
WHERE i.subscription_id = s.id AND s.org_id IS NOT NULL
  AND (i.status = 'pending' OR (i.status = 'paid' AND i.period_start >= s.current_period_end));
UPDATE users u SET plan = 'free' FROM organisations o WHERE o.owner_id = u.id AND o.plan = 'team' AND u.plan = 'team';

-- Per-member monthly limits in a team, set by the owner or a manager (NULL: none): requests and spend (whole
-- rupiah) per Asia/Jakarta month, counted over the member's team proxy keys, enforced by the gateway's ruled
-- limiter call (counters in Redis, rebuilt from usage_daily: sql/0016's index serves the rebuild).
ALTER TABLE org_members
    ADD COLUMN monthly_request_limit INTEGER CHECK (monthly_request_limit > 0),
    ADD COLUMN monthly_spend_limit_idr BIGINT CHECK (monthly_spend_limit_idr > 0);
