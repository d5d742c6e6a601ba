-- 0004: organisations per session, invitations, TOTP and password reset (issue 6, item 2).
-- Same conventions as 0001: {{pk}}/{{blob}} tokens, times in Unix microseconds, one statement per ';' line end.

-- The organisation a session acts on; 0 for sessions made before this migration (they are refused: log in again).
ALTER TABLE sessions ADD COLUMN organisation_id BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sessions_account ON sessions (account_id);

-- An invitation to join an organisation. The token (32 random bytes) is mailed to email; only its SHA-256 is kept.
-- It is single use (accepted_us) and can be revoked (revoked_us); 0 means not (yet).
CREATE TABLE invitations (
	id {{pk}},
	organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
	email TEXT NOT NULL,
	role TEXT NOT NULL,
	token_hash {{blob}} NOT NULL UNIQUE,
	invited_by TEXT NOT NULL,
	created_us BIGINT NOT NULL,
	expires_us BIGINT NOT NULL,
	accepted_us BIGINT NOT NULL DEFAULT 0,
	revoked_us BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX invitations_organisation ON invitations (organisation_id, id);

-- TOTP (RFC 6238): the secret is AES-256-GCM sealed under the console key with "totp:<account id>" as additional
-- data; totp_enabled turns 1 once a code has confirmed the enrolment; totp_last_step is the time step of the last
-- accepted code, which is never accepted again.
ALTER TABLE accounts ADD COLUMN totp_secret {{blob}};
ALTER TABLE accounts ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;

-- Password reset tokens (32 random bytes, mailed); only their SHA-256 is kept. Single use (used_us), 1 hour.
CREATE TABLE password_resets (
	id {{pk}},
	token_hash {{blob}} NOT NULL UNIQUE,
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	created_us BIGINT NOT NULL,
	expires_us BIGINT NOT NULL,
	used_us BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX password_resets_account ON password_resets (account_id);
