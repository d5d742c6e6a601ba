-- 0002: the console's accounts, sessions, projects with certificates and API keys (issue 6).
-- Same conventions as 0001: {{pk}}/{{blob}} tokens, times in Unix microseconds, one statement per ';' line end.

-- password_hash is an argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash); never the password.
ALTER TABLE accounts ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';

-- A session is found by the SHA-256 of its random id; the id itself lives only in the browser's cookie.
-- csrf_token is echoed by the browser in X-CSRF-Token on every state-changing request.
CREATE TABLE sessions (
	id_hash {{blob}} PRIMARY KEY,
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	csrf_token TEXT NOT NULL,
	created_us BIGINT NOT NULL,
	expires_us BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_us);

-- Certificates are AES-256-GCM ciphertexts (nonce || sealed) under the console key file, with the App ID as
-- additional data. cert_secondary is empty when no rotation is in progress. version is the ETag.
ALTER TABLE projects ADD COLUMN cert_primary {{blob}};
ALTER TABLE projects ADD COLUMN cert_secondary {{blob}};
ALTER TABLE projects ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE projects ADD COLUMN updated_us BIGINT NOT NULL DEFAULT 0;
CREATE INDEX projects_organisation ON projects (organisation_id, id);

-- API keys authenticate with HTTP Basic (key_id, secret); only the SHA-256 of the high-entropy secret is kept.
CREATE TABLE api_keys (
	id {{pk}},
	key_id TEXT NOT NULL UNIQUE,
	organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	secret_hash {{blob}} NOT NULL,
	created_by TEXT NOT NULL,
	created_us BIGINT NOT NULL,
	revoked_us BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_organisation ON api_keys (organisation_id, id);
