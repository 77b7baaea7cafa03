-- Admins' own OpenAI-compatible upstreams (issue 16): a self-hosted vLLM/TGI/Ollama or an Indonesian provider's
-- OpenAI-style API, served to every user under a model prefix. The registry builds one provider spec per row
-- (providers/custom.py); every replica reloads the rows on the key-cache channel's "upstreams" signal.
-- The URL is checked when saved and again at connect time, after DNS (netguard): this table is not trusted for it.
CREATE TABLE upstreams (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    slug TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9_-]{0,31}$'),  -- the provider id (api_keys.provider)
    name TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    base_url TEXT NOT NULL CHECK (char_length(base_url) BETWEEN 8 AND 2048),
    model_prefix TEXT NOT NULL UNIQUE CHECK (model_prefix ~ '^[a-z0-9][a-z0-9._-]{0,39}/?$'),
    auth_header TEXT CHECK (auth_header ~ '^[A-Za-z0-9-]{1,64}$'),  -- NULL: Authorization: Bearer <key>
    static_headers JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(static_headers) = 'object'),
    keyless BOOLEAN NOT NULL DEFAULT false,  -- callable without a user key (the upstream needs none)
    enabled BOOLEAN NOT NULL DEFAULT true,
    changed_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER upstreams_set_updated_at BEFORE UPDATE ON upstreams
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
