-- Revocable access tokens. An access token names its sign-in (the refresh family, claim `fam`); the API accepts
-- it only while that family still has a row with revoked_at IS NULL. Logout revokes one family; refresh-token
-- reuse, a password change and a promotion by `create-admin --promote` revoke every family of the user.
-- The check runs inside the user read every authenticated /api call already makes; this partial index makes
-- it one index probe (a revoked family has no row here, so it costs nothing however many rotations it had).
-- Schema-only and additive: replicas of the previous version keep working while a rolling update runs.
CREATE INDEX refresh_tokens_live_family_idx ON refresh_tokens (family_id) WHERE revoked_at IS NULL;
