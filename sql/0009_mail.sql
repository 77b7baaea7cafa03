-- E-mail (issue 14): the user's language and verified address, single-use link tokens, and the outbox every
-- message goes through before the mail job sends it.

-- The language of the user's e-mails, set by the console's language switch; Indonesian by default.
-- email_verified_at: when the owner proved the address (a verification or reset link). Accounts that exist
-- before this file count as verified (they were made before verification existed); admins always count.
ALTER TABLE users
    ADD COLUMN locale TEXT NOT NULL DEFAULT 'id' CHECK (locale IN ('id', 'en')),
    ADD COLUMN email_verified_at TIMESTAMPTZ;
UPDATE users SET email_verified_at = created_at;

-- Verification and password-reset links. Only the SHA-256 of a link's token is kept; the token itself is an
-- HMAC of the row id under a key derived from JWT_SECRET, so the outbox needs to hold only the row id.
CREATE TABLE email_tokens (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    token_hash BYTEA NOT NULL UNIQUE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose) WHERE used_at IS NULL;
CREATE TRIGGER email_tokens_set_updated_at BEFORE UPDATE ON email_tokens
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();

-- The outbox. A message is a row first (inside the transaction of what caused it), then the mail job (one
-- replica at a time) renders and sends it: queued -> sent, or failed (refused for good, or too many tries), or
-- not_sent (no SMTP server configured). message_id is fixed at the first attempt, so a resend after a crash
-- mid-send carries the same Message-ID. dedup_key: at most one message per key (a receipt per invoice, a
-- reminder per period, an alert per threshold and period), whichever replica asks first.
CREATE TABLE mail_outbox (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    recipient TEXT NOT NULL CHECK (length(recipient) BETWEEN 3 AND 254),
    locale TEXT NOT NULL CHECK (locale IN ('id', 'en')),
    template TEXT NOT NULL,
    params JSONB NOT NULL DEFAULT '{}'::jsonb,
    message_id TEXT UNIQUE,  -- fixed at the first attempt (<outbox id@sender's domain>), then never changed
    dedup_key TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed', 'not_sent')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT,
    sent_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE status = 'queued';
CREATE INDEX mail_outbox_user_idx ON mail_outbox (user_id, created_at DESC);
CREATE TRIGGER mail_outbox_set_updated_at BEFORE UPDATE ON mail_outbox
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();

-- The renewal reminder goes once per paid period: the period end it was sent for.
ALTER TABLE subscriptions ADD COLUMN reminded_period_end TIMESTAMPTZ;
