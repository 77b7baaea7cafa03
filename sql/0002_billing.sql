-- Billing, phase 2: what an Indonesian invoice must show as it was issued, and the admin latency query.

-- The invoice's lines, the PPN rate and the seller, frozen when the invoice is issued (the buyer already is,
-- in invoices.buyer): a later change of PPN rate, plan names or company details never rewrites an invoice.
ALTER TABLE invoices
    ADD COLUMN lines JSONB NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN ppn_percent INTEGER CHECK (ppn_percent >= 0),
    ADD COLUMN seller JSONB NOT NULL DEFAULT '{}'::jsonb;

-- The lifecycle job looks for pending invoices past their expiry and active periods past their end.
CREATE INDEX invoices_pending_expiry_idx ON invoices (expires_at) WHERE status = 'pending';
CREATE INDEX invoices_subscription_idx ON invoices (subscription_id, status);

-- GET /api/admin/stats reads the last hour of proxy_requests; BRIN is tiny and cheap to keep on an
-- append-only time column, so the hot path pays almost nothing for it.
CREATE INDEX proxy_requests_created_brin ON proxy_requests USING brin (created_at);
CREATE INDEX audit_log_target_idx ON audit_log (target_user_id, created_at DESC);
