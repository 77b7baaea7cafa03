-- Alerts (issue 14): 80 % and 100 % of the monthly request quota, of the account's spend cap and of each key's
-- spend cap; the user's webhook and the deliveries waiting for it.

-- One row per threshold and period, whichever replica saw it first (dedup_key: alert:{scope}:{id}:{period}:
-- {percent}); the same key guards the e-mail (mail_outbox.dedup_key) and the webhook delivery. The console shows
-- the undismissed ones on every page, carried on the answers it already asks for.
CREATE TABLE alerts (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope TEXT NOT NULL CHECK (scope IN ('quota', 'user_spend', 'key_spend')),
    proxy_key_id UUID REFERENCES proxy_api_keys (id) ON DELETE CASCADE,  -- the key of a key_spend alert
    period TEXT NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),  -- YYYY-MM, Asia/Jakarta
    percent SMALLINT NOT NULL CHECK (percent IN (80, 100)),
    used BIGINT NOT NULL,  -- requests (quota) or micro-rupiah (spend) when the threshold was crossed
    cap BIGINT NOT NULL,  -- the quota or the cap, in the same unit
    hard BOOLEAN NOT NULL DEFAULT true,  -- whether reaching the limit stops calls (a soft account cap does not)
    dedup_key TEXT NOT NULL UNIQUE,
    dismissed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((scope = 'key_spend') = (proxy_key_id IS NOT NULL))
);
CREATE INDEX alerts_pending_idx ON alerts (user_id, created_at DESC) WHERE dismissed_at IS NULL;
CREATE INDEX alerts_user_idx ON alerts (user_id, created_at DESC);
CREATE TRIGGER alerts_set_updated_at BEFORE UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();

-- The user's one webhook. The signing secret is sealed like a provider key (AES-256-GCM under the master key,
-- AD = user id + this row's id, key_version for rotation); it is shown once, when made.
CREATE TABLE webhooks (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    url TEXT NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    secret_ciphertext BYTEA NOT NULL,
    secret_nonce BYTEA NOT NULL,
    key_version INTEGER NOT NULL,
    secret_hint TEXT NOT NULL,  -- the secret's last characters, to recognise it
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER webhooks_set_updated_at BEFORE UPDATE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();

-- Events waiting for the user's webhook, sent by the webhook job (one replica at a time) with retries and
-- backoff: queued -> sent | failed (too many tries); removing the webhook removes them. body is the exact JSON
-- sent every time (its "id" lets a receiver drop a repeat); the URL is read, and checked, at send time.
CREATE TABLE webhook_deliveries (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    webhook_id UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL CHECK (length(body) <= 16384),
    dedup_key TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_status INTEGER,  -- the receiver's HTTP status at the last try, if it answered
    last_error TEXT,
    sent_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'queued';
CREATE INDEX webhook_deliveries_user_idx ON webhook_deliveries (user_id, created_at DESC);
CREATE TRIGGER webhook_deliveries_set_updated_at BEFORE UPDATE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
