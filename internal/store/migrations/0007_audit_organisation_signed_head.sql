-- 0007: every audit entry belongs to an organisation, or to none; every access-log entry to the
-- account whose email it names, or to none; the audit head carries a signature.
--
-- organisation_id is NULL for entries that concern no organisation (account.* actions, the retention purge).
-- It is not covered by the entry's hash: it decides who may read an entry, not what the entry says.
ALTER TABLE audit_log ADD COLUMN organisation_id BIGINT;
CREATE INDEX audit_log_organisation ON audit_log (organisation_id, seq);

-- Entries written before this migration: those whose target still names an object of an organisation get that
-- organisation; the rest (deleted projects, accounts) stay with none, readable by no organisation.
UPDATE audit_log SET organisation_id = (SELECT p.organisation_id FROM projects p WHERE 'project:' || p.app_id = audit_log.target)
	WHERE target LIKE 'project:%';
UPDATE audit_log SET organisation_id = (SELECT k.organisation_id FROM api_keys k WHERE 'apikey:' || k.key_id = audit_log.target)
	WHERE target LIKE 'apikey:%';
UPDATE audit_log SET organisation_id = (SELECT i.organisation_id FROM invitations i WHERE 'invitation:' || CAST(i.id AS TEXT) = audit_log.target)
	WHERE target LIKE 'invitation:%';
UPDATE audit_log SET organisation_id = (SELECT o.id FROM organisations o WHERE 'organisation:' || CAST(o.id AS TEXT) = audit_log.target)
	WHERE target LIKE 'organisation:%';

-- A login belongs to the account it tried, never to an organisation; NULL when no account has that email.
ALTER TABLE access_log ADD COLUMN account_id BIGINT;
CREATE INDEX access_log_account ON access_log (account_id, id);
UPDATE access_log SET account_id = (SELECT a.id FROM accounts a WHERE a.email = access_log.email);

-- The head's Ed25519 signature by the console's audit key, over (seq, hash, time, key id); see docs/audit.md.
-- A head written before this migration has none, and the log cannot be appended to until an operator signs it
-- (stoa audit sign-head).
ALTER TABLE audit_head ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_head ADD COLUMN signature {{blob}};
