-- Webrana initial schema. Every table: id UUID PK, created_at, updated_at (kept current by a trigger).

CREATE OR REPLACE FUNCTION webrana_set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    plan TEXT NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'starter', 'pro', 'team')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    burst_per_minute_override INTEGER CHECK (burst_per_minute_override > 0),
    monthly_requests_override INTEGER CHECK (monthly_requests_override >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_created_at_idx ON users (created_at DESC);

CREATE TABLE refresh_tokens (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id UUID NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Provider keys (OpenAI, Anthropic, Google, Qwen): AES-256-GCM ciphertext only, never plaintext.
CREATE TABLE api_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL CHECK (provider IN ('openai', 'anthropic', 'google', 'qwen')),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    ciphertext BYTEA NOT NULL,
    nonce BYTEA NOT NULL CHECK (length(nonce) = 12),
    key_version INTEGER NOT NULL,
    masked_hint TEXT NOT NULL,
    last_used_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, provider);
CREATE INDEX api_keys_version_idx ON api_keys (key_version);

-- Webrana proxy keys (wbr_...): only the SHA-256 of the key is stored.
CREATE TABLE proxy_api_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash BYTEA NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    request_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX proxy_api_keys_user_idx ON proxy_api_keys (user_id) WHERE revoked_at IS NULL;

-- One row per gateway call. Written in batches off the hot path.
CREATE TABLE proxy_requests (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id TEXT NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    proxy_key_id UUID REFERENCES proxy_api_keys (id) ON DELETE SET NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL DEFAULT 'chat',
    stream BOOLEAN NOT NULL DEFAULT false,
    status INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    tokens_estimated BOOLEAN NOT NULL DEFAULT false,
    cost_idr BIGINT NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    ttfb_ms INTEGER,
    upstream_request_id TEXT,
    error_type TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX proxy_requests_request_id_key ON proxy_requests (request_id);
CREATE INDEX proxy_requests_user_time_idx ON proxy_requests (user_id, created_at DESC, id DESC);

-- Daily roll-up per user, provider and model (Asia/Jakarta days), updated with each batch.
CREATE TABLE usage_daily (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day DATE NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL DEFAULT 0,
    cost_idr BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, day, provider, model)
);

CREATE TABLE subscriptions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan TEXT NOT NULL CHECK (plan IN ('free', 'starter', 'pro', 'team')),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'cancelled', 'expired')),
    current_period_start TIMESTAMPTZ,
    current_period_end TIMESTAMPTZ,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT false,
    scheduled_plan TEXT CHECK (scheduled_plan IN ('free', 'starter', 'pro', 'team')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_user_idx ON subscriptions (user_id, created_at DESC);
CREATE INDEX subscriptions_period_end_idx ON subscriptions (current_period_end) WHERE status = 'active';

CREATE TABLE invoices (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subscription_id UUID REFERENCES subscriptions (id) ON DELETE SET NULL,
    number TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL UNIQUE CHECK (order_id ~ '^[A-Za-z0-9._~-]{1,50}$'),
    plan TEXT NOT NULL CHECK (plan IN ('free', 'starter', 'pro', 'team')),
    kind TEXT NOT NULL DEFAULT 'new' CHECK (kind IN ('new', 'renewal', 'upgrade')),
    subtotal_idr BIGINT NOT NULL CHECK (subtotal_idr >= 0),
    ppn_idr BIGINT NOT NULL CHECK (ppn_idr >= 0),
    total_idr BIGINT NOT NULL CHECK (total_idr = subtotal_idr + ppn_idr),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'paid', 'expired', 'cancelled', 'denied', 'refunded')),
    payment_method TEXT,
    paid_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ NOT NULL,
    snap_token TEXT,
    redirect_url TEXT,
    idempotency_key TEXT,
    period_start TIMESTAMPTZ,
    period_end TIMESTAMPTZ,
    buyer JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX invoices_user_idx ON invoices (user_id, created_at DESC);
CREATE UNIQUE INDEX invoices_idempotency_key ON invoices (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX invoices_pending_idx ON invoices (created_at) WHERE status = 'pending';

-- Per-month invoice counters for WEB-YYYY-MM-NNNN numbers (row-locked increment, never duplicated).
CREATE TABLE invoice_counters (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    month TEXT NOT NULL UNIQUE CHECK (month ~ '^[0-9]{4}-[0-9]{2}$'),
    last_number INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every Midtrans notification received, raw, with our verdict (audit).
CREATE TABLE payment_notifications (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id TEXT,
    raw JSONB NOT NULL,
    verdict TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX payment_notifications_order_idx ON payment_notifications (order_id, created_at);

-- Who did what, when: every admin action.
CREATE TABLE audit_log (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    actor_id UUID REFERENCES users (id) ON DELETE SET NULL,
    action TEXT NOT NULL,
    target_user_id UUID REFERENCES users (id) ON DELETE SET NULL,
    details JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC);

CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER refresh_tokens_set_updated_at BEFORE UPDATE ON refresh_tokens
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER api_keys_set_updated_at BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER proxy_api_keys_set_updated_at BEFORE UPDATE ON proxy_api_keys
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER proxy_requests_set_updated_at BEFORE UPDATE ON proxy_requests
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER usage_daily_set_updated_at BEFORE UPDATE ON usage_daily
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER subscriptions_set_updated_at BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER invoices_set_updated_at BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER invoice_counters_set_updated_at BEFORE UPDATE ON invoice_counters
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER payment_notifications_set_updated_at BEFORE UPDATE ON payment_notifications
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
CREATE TRIGGER audit_log_set_updated_at BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
