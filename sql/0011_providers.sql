-- The provider list stops living in the database: which provider ids exist is the registry's
-- (webrana_proxy/providers/registry.py SPECS), and /api/provider-keys validates against it. A CHECK here
-- would need a migration for every provider added, and could not know the ones a deployment turns on.
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_provider_check;
-- What remains: an id is short lowercase text, as the registry's ids are.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_provider_format CHECK (provider ~ '^[a-z][a-z0-9_-]{0,31}$');
