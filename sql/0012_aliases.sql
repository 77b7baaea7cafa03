-- Aliases with cross-provider fallbacks (issue 16). A user names a chain of models, e.g. wbr/fast =
-- deepseek-chat -> gemini-3.8-flash -> gpt-6.1-terra, and calls the name like a model in every dialect.
-- hops: [{"model": "deepseek-chat", "params": {"max_tokens": 512}, "first_byte_timeout": 10}, ...], 1 to 5
-- hops, checked by the API (webrana_proxy/aliases.py). The owner is a user today; a team's aliases come with the
-- teams issue by adding workspace_id (nullable) and replacing owner_present with num_nonnulls(user_id,
-- workspace_id) = 1, plus a unique index per workspace: nothing here has to be rewritten for that.
CREATE TABLE model_aliases (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (name ~ '^wbr/[a-z0-9][a-z0-9._-]{0,62}$'),
    hops JSONB NOT NULL CHECK (jsonb_typeof(hops) = 'array' AND jsonb_array_length(hops) BETWEEN 1 AND 5),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT model_aliases_owner_present CHECK (user_id IS NOT NULL)
);
CREATE UNIQUE INDEX model_aliases_user_name_key ON model_aliases (user_id, name) WHERE user_id IS NOT NULL;
CREATE TRIGGER model_aliases_set_updated_at BEFORE UPDATE ON model_aliases
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();

-- Every upstream attempt of a call is a usage row of its own. The attempt that answered (or the last one, when
-- every attempt failed) keeps the call's request id; earlier failed attempts get "<request id>:<attempt>", so
-- the unique request-id index holds. attempt: 1, 2, ... (0: the call never reached a provider; NULL on rows
-- written before this migration). failed_attempt: a failed attempt the call moved on from: never charged, not
-- in usage_daily (a call counts once against the quota). alias: the alias the client called, if any; provider
-- and model are always who served (or was tried). Additive only: no rewrite of proxy_requests.
ALTER TABLE proxy_requests
    ADD COLUMN attempt SMALLINT,
    ADD COLUMN failed_attempt BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN alias TEXT;
