-- The request log filtered by model (GET /api/usage/requests?model=...): an equality on model ahead of the
-- keyset columns, so the page is one index range read newest first, however many rows the user has. Without
-- it, a model the user never used meant walking all of the user's rows on proxy_requests_user_time_idx, or
-- (as the planner chose on 10 M rows) a parallel sequential scan of the whole table: 670 ms.
-- Migrations run in a transaction, so this is a plain CREATE INDEX: it blocks writes to proxy_requests while
-- it builds (seconds per million rows). On a large live table, create it first by hand with
-- CREATE INDEX CONCURRENTLY IF NOT EXISTS (same name and definition); this file then does nothing.
CREATE INDEX IF NOT EXISTS proxy_requests_user_model_time_idx
    ON proxy_requests (user_id, model, created_at DESC, id DESC);
