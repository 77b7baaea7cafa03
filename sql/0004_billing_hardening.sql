-- Billing hardening (issue 11): refund-due invoices, one pending invoice per user, and bounded records of
-- rejected Midtrans notifications.

-- 1. refund_due: the money arrived but nothing was granted for it (an upgrade whose period changed after it
--    was priced, a payment for an invoice that was already closed). An admin refunds it and marks it refunded.
ALTER TABLE invoices DROP CONSTRAINT invoices_status_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_status_check
    CHECK (status IN ('pending', 'paid', 'expired', 'cancelled', 'denied', 'refund_due', 'refunded'));
ALTER TABLE invoices
    ADD COLUMN refund_reason TEXT,
    ADD COLUMN refunded_at TIMESTAMPTZ;
CREATE INDEX invoices_refund_due_idx ON invoices (updated_at) WHERE status = 'refund_due';

-- 2. At most one pending invoice per user. Duplicates from before this rule: the newest stays pending, the
--    older ones are cancelled (a payment that still arrives for one becomes refund_due, never lost), and a
--    subscription that only those invoices were opening is closed.
UPDATE invoices AS older SET status = 'cancelled'
WHERE older.status = 'pending'
  AND EXISTS (SELECT 1 FROM invoices AS newer
              WHERE newer.user_id = older.user_id AND newer.status = 'pending'
                AND (newer.created_at, newer.id) > (older.created_at, older.id));
UPDATE subscriptions AS s SET status = 'cancelled'
WHERE s.status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM invoices WHERE subscription_id = s.id AND status IN ('pending', 'paid'));
CREATE UNIQUE INDEX invoices_one_pending_per_user ON invoices (user_id) WHERE status = 'pending';

-- 3. A rejected notification (bad signature, not a JSON object) keeps only what an investigation needs: the
--    order id and status it claimed, the SHA-256 and size of the body, and at most its first 1 KiB. Rows kept
--    whole before this file are cut down the same way (their hash is of the stored JSON text, the original
--    bytes are gone). The lifecycle job deletes rejected rows after 30 days.
ALTER TABLE payment_notifications
    ALTER COLUMN raw DROP NOT NULL,
    ADD COLUMN transaction_status TEXT,
    ADD COLUMN body_sha256 TEXT,
    ADD COLUMN body_bytes INTEGER,
    ADD COLUMN excerpt TEXT CHECK (octet_length(excerpt) <= 1024),
    ADD COLUMN rejected BOOLEAN NOT NULL DEFAULT false;
UPDATE payment_notifications
SET rejected = true,
    transaction_status = left(raw ->> 'transaction_status', 40),
    body_sha256 = encode(sha256(convert_to(raw::text, 'UTF8')), 'hex'),
    body_bytes = octet_length(raw::text),
    excerpt = CASE WHEN octet_length(left(raw::text, 1024)) <= 1024 THEN left(raw::text, 1024)
                   ELSE left(raw::text, 256) END,
    raw = NULL
WHERE verdict IN ('forged', 'malformed');
CREATE INDEX payment_notifications_rejected_idx ON payment_notifications (created_at) WHERE rejected;
