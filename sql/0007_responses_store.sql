-- Responses Webrana keeps for translated providers (POST /v1/responses with store: true on a Claude, Gemini or
-- Qwen model), so previous_response_id and GET /v1/responses/{id} work with them from any replica.
-- input_items: every input item of the conversation so far (earlier turns' items first), as the client sent
-- them; response: the response object as it was answered (its output items are the rest of the conversation).
-- Readable only by the owning user; 30 days after creation (expires_at) a periodic job deletes the row.
-- Responses OpenAI stored are not here: only which key created them, in Redis.
CREATE TABLE stored_responses (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    response_id TEXT NOT NULL UNIQUE,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    input_items JSONB NOT NULL,
    response JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX stored_responses_expires_at_idx ON stored_responses (expires_at);
CREATE INDEX stored_responses_user_id_idx ON stored_responses (user_id);
CREATE TRIGGER stored_responses_set_updated_at BEFORE UPDATE ON stored_responses
    FOR EACH ROW EXECUTE FUNCTION webrana_set_updated_at();
