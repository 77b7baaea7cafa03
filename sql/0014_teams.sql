-- Teams (issue 15): organisations, their members with a role, and e-mail invitations.
-- A workspace is either a user's own (personal: its id is the user's id) or an organisation (its id is the
-- organisation's). Who may act in which workspace is decided in one place: webrana_proxy/workspaces.py.

CREATE TABLE organisations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    owner_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- A Team subscriber owns at most one organisation (an ownership transfer to someone who owns one is refused).
CREATE UNIQUE INDEX organisations_owner_key ON organisations (owner_id);
CREATE TRIGGER organisations_set_updated_at BEFORE UPDATE ON organisations
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();

-- Roles: owner (billing, delete, transfer), manager (members, keys, rules), member (use the team's keys).
-- The owner is a member row too (role 'owner', exactly one per organisation), so a seat count is one count(*).
CREATE TABLE org_members (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id UUID NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'manager', 'member')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (org_id, user_id)
);
CREATE UNIQUE INDEX org_members_one_owner ON org_members (org_id) WHERE role = 'owner';
CREATE INDEX org_members_user_idx ON org_members (user_id);
CREATE TRIGGER org_members_set_updated_at BEFORE UPDATE ON org_members
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();

-- Invitations by e-mail link: bound to the invited address, single use, 7 days. Only the SHA-256 of the link's
-- token is kept (the token is an HMAC of token_id, like email_tokens', so the outbox holds only token_id).
-- A resend replaces token_id, token_hash and expires_at (the old link stops working). An open invitation that
-- has not expired holds a seat.
CREATE TABLE org_invitations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id UUID NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    email TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role TEXT NOT NULL CHECK (role IN ('manager', 'member')),
    token_id UUID NOT NULL UNIQUE,
    token_hash BYTEA NOT NULL UNIQUE,
    invited_by UUID REFERENCES users (id) ON DELETE SET NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ,
    accepted_by UUID REFERENCES users (id) ON DELETE SET NULL,
    revoked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One open invitation per address and organisation (an expired one is renewed by a resend, not duplicated).
CREATE UNIQUE INDEX org_invitations_open_key ON org_invitations (org_id, lower(email))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE TRIGGER org_invitations_set_updated_at BEFORE UPDATE ON org_invitations
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();

-- Leaving, removing a member, role changes and ownership transfers are audited with the organisation they
-- happened in (no foreign key: the trail outlives a deleted organisation).
ALTER TABLE audit_log ADD COLUMN org_id UUID;
CREATE INDEX audit_log_org_idx ON audit_log (org_id, created_at DESC) WHERE org_id IS NOT NULL;

-- What a team shares. A row whose org_id is set belongs to that organisation's workspace; NULL means the personal
-- workspace of its user_id. So the workspace of a row is coalesce(org_id, user_id), and every row written before
-- teams existed already names its workspace: nothing is rewritten. user_id stays who added the key or made the call
-- (the per-member breakdown).
ALTER TABLE api_keys ADD COLUMN org_id UUID REFERENCES organisations (id) ON DELETE CASCADE;
CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at) WHERE org_id IS NOT NULL;
ALTER TABLE proxy_api_keys ADD COLUMN org_id UUID REFERENCES organisations (id) ON DELETE CASCADE;
CREATE INDEX proxy_api_keys_org_idx ON proxy_api_keys (org_id, user_id) WHERE org_id IS NOT NULL AND revoked_at IS NULL;
-- Usage keeps its organisation without a foreign key (the record outlives a deleted team; COPY stays cheap).
ALTER TABLE proxy_requests ADD COLUMN org_id UUID;
CREATE INDEX proxy_requests_org_time_idx ON proxy_requests (org_id, created_at DESC, id DESC) WHERE org_id IS NOT NULL;
-- The daily roll-up is per workspace and member: (user, organisation or NULL, day, provider, model), NULLs equal.
ALTER TABLE usage_daily ADD COLUMN org_id UUID;
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_user_id_day_provider_model_key;
ALTER TABLE usage_daily ADD CONSTRAINT usage_daily_workspace_key
    UNIQUE NULLS NOT DISTINCT (user_id, org_id, day, provider, model);
CREATE INDEX usage_daily_org_day_idx ON usage_daily (org_id, day) WHERE org_id IS NOT NULL;
