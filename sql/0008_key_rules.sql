-- Per-key rules and per-user spend caps (issue 14). Additive only: every new column is NULL or has a constant
-- default, so PostgreSQL adds it without rewriting a table and replicas of the previous version keep working.
--
-- proxy_api_keys: a monthly spend cap in whole rupiah (Asia/Jakarta months, like the request quota), a
-- requests-per-minute limit, allow-lists of models (exact ids or globs with * and ?) and providers (a call is
-- allowed when no list is set, or it matches either list), an expiry time and a free-text note.
ALTER TABLE proxy_api_keys
    ADD COLUMN spend_cap_idr BIGINT CHECK (spend_cap_idr > 0),
    ADD COLUMN rpm_limit INTEGER CHECK (rpm_limit > 0),
    ADD COLUMN allowed_models TEXT[] CHECK (cardinality(allowed_models) <= 50),
    ADD COLUMN allowed_providers TEXT[] CHECK (cardinality(allowed_providers) <= 20),
    ADD COLUMN expires_at TIMESTAMPTZ,
    ADD COLUMN note TEXT NOT NULL DEFAULT '' CHECK (length(note) <= 500);

-- users: a monthly spend cap in whole rupiah, set by the user or an admin. Hard: calls stop when it is reached;
-- soft: the calls go on and only the alerts fire.
ALTER TABLE users
    ADD COLUMN spend_cap_idr BIGINT CHECK (spend_cap_idr > 0),
    ADD COLUMN spend_cap_hard BOOLEAN NOT NULL DEFAULT true;

-- A key's spend this month is rebuilt from proxy_requests when Redis lost its counter (a user's comes from
-- usage_daily): one index range per key, read from the index alone. Migrations run in a transaction, so this is
-- a plain CREATE INDEX that blocks writes to proxy_requests while it builds (seconds per million rows). On a
-- large live table, create it first by hand with CREATE INDEX CONCURRENTLY IF NOT EXISTS (same name and
-- definition); this file then does nothing.
CREATE INDEX IF NOT EXISTS proxy_requests_key_time_idx
    ON proxy_requests (proxy_key_id, created_at) INCLUDE (cost_idr_micro, cost_idr)
    WHERE proxy_key_id IS NOT NULL;
