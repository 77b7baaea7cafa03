-- Alerts for a team member's monthly limits (issue 15's per-member limits, the budgets issue's alerts): at 80 % and
-- 100 % of a member's monthly request limit (member_requests) and spend limit (member_spend) in a team. The row is
-- the member's (user_id: their banner), with the team in org_id; its dedup key names the team and the member
-- (alert:{scope}:{org_id}:{user_id}:{period}:{percent}). The member and the team's owner are e-mailed; the owner's
-- webhook gets the event, as for the team's quota alerts (alerts/record.py).
ALTER TABLE alerts DROP CONSTRAINT alerts_scope_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_scope_check
    CHECK (scope IN ('quota', 'user_spend', 'key_spend', 'member_requests', 'member_spend'));
ALTER TABLE alerts ADD CONSTRAINT alerts_member_org_check
    CHECK (scope NOT IN ('member_requests', 'member_spend') OR org_id IS NOT NULL);
