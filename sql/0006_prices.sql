-- Prices that explain themselves (issue 13). Additive only: every new column has a constant default or is
-- NULL, so PostgreSQL adds it without rewriting proxy_requests, and replicas of the previous version keep
-- working while a rolling update runs.
--
-- Money per call keeps precision far below a rupiah: cost_idr_micro (micro-rupiah) and cost_usd_nano
-- (nano-USD), integers. cost_idr keeps what rows priced before this migration hold (whole rupiah, rounded per
-- call); rows written since carry 0 there. So in both tables a cost is cost_idr * 1000000 + cost_idr_micro
-- micro-rupiah, for old and new rows alike, and nothing is rewritten. cost_usd_nano, usd_to_idr, price_source and
-- price_version are 0 / NULL on old rows (they were priced from the old in-code list, whole rupiah only).
ALTER TABLE proxy_requests
    ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN service_tier TEXT,
    ADD COLUMN cost_usd_nano BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cost_idr_micro BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN usd_to_idr INTEGER,
    ADD COLUMN price_source TEXT CHECK (price_source IN ('catalogue', 'override', 'fallback', 'provider')),
    ADD COLUMN price_version TEXT;

ALTER TABLE usage_daily
    ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cost_usd_nano BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cost_idr_micro BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN fallback_requests BIGINT NOT NULL DEFAULT 0;  -- calls of a model with no price (cost estimated)

-- Admins' price overrides: negotiated rates, a model released this morning, a correction before the next
-- `make prices`. They win over the vendored data from valid_from on. model_pattern is an exact model id, or a
-- prefix ending in '*'. prices: {"input": "2.5", "cache_read": "0.25", "output": {"base": "10", "tiers":
-- [[200000, "15"]]}, ...} in USD per million tokens (the vendored files' shape).
CREATE TABLE model_prices (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    provider TEXT NOT NULL,
    model_pattern TEXT NOT NULL CHECK (length(model_pattern) BETWEEN 1 AND 200),
    valid_from TIMESTAMPTZ NOT NULL DEFAULT now(),
    prices JSONB NOT NULL,
    context_window INTEGER,
    source TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    changed_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (provider, model_pattern, valid_from)
);
CREATE TRIGGER model_prices_set_updated_at BEFORE UPDATE ON model_prices
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
