-- 0001: the console's initial schema.
--
-- Tokens replaced per dialect before execution (see dialect.go):
--   {{pk}}        an auto-incrementing 64-bit primary key
--   {{blob}}      a byte string (BLOB / BYTEA)
--   {{zerohash}}  a literal of 32 zero bytes
-- Times are INTEGER/BIGINT Unix microseconds (UTC) in every table, named *_us.
-- Statements are separated by a semicolon at the end of a line.

-- The tamper-evident audit log (internal/audit). id is the physical insertion order; seq is the chain position.
-- seq deliberately has no UNIQUE constraint: appends are serialised through audit_head, and a duplicate seq
-- written by anyone else is reported by audit.Verify as an insertion rather than hidden by the database.
CREATE TABLE audit_log (
	id {{pk}},
	seq BIGINT NOT NULL,
	time_us BIGINT NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL,
	before_json TEXT NOT NULL,
	after_json TEXT NOT NULL,
	prev_hash {{blob}} NOT NULL,
	hash {{blob}} NOT NULL
);
CREATE INDEX audit_log_seq ON audit_log (seq);
CREATE INDEX audit_log_time ON audit_log (time_us);

-- The single head row: the last appended entry. Appenders lock it (FOR UPDATE on PostgreSQL, an IMMEDIATE
-- transaction on SQLite), which serialises appends across connections and processes.
CREATE TABLE audit_head (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	seq BIGINT NOT NULL,
	hash {{blob}} NOT NULL,
	time_us BIGINT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, time_us) VALUES (1, 0, {{zerohash}}, 0);

-- Signed checkpoints: the console's Ed25519 key signs (seq, hash, time, key id) of an entry.
CREATE TABLE audit_checkpoints (
	id {{pk}},
	seq BIGINT NOT NULL,
	hash {{blob}} NOT NULL,
	time_us BIGINT NOT NULL,
	key_id TEXT NOT NULL,
	public_key {{blob}} NOT NULL,
	signature {{blob}} NOT NULL
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq);

-- Placeholders for the console (issue 6), minimal on purpose; later migrations add columns and tables.
-- An organisation owns projects; accounts join organisations through memberships.
CREATE TABLE organisations (
	id {{pk}},
	name TEXT NOT NULL,
	created_us BIGINT NOT NULL
);

-- An account is identified by its email address; credentials are added by the accounts work.
CREATE TABLE accounts (
	id {{pk}},
	email TEXT NOT NULL UNIQUE,
	created_us BIGINT NOT NULL
);

-- role is one of owner, admin, member, viewer.
CREATE TABLE memberships (
	organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	role TEXT NOT NULL,
	PRIMARY KEY (organisation_id, account_id)
);

-- A project is an App ID; its certificates (encrypted at rest) come with the projects work.
CREATE TABLE projects (
	id {{pk}},
	organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
	app_id TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	enabled INTEGER NOT NULL DEFAULT 1,
	created_us BIGINT NOT NULL
);

-- Media server logs: cluster events ingested from the bus. Never media, message content or secrets.
CREATE TABLE media_events (
	id {{pk}},
	time_us BIGINT NOT NULL,
	project_id BIGINT NOT NULL,
	kind TEXT NOT NULL,
	channel TEXT NOT NULL DEFAULT '',
	uid TEXT NOT NULL DEFAULT '',
	edge TEXT NOT NULL DEFAULT '',
	region TEXT NOT NULL DEFAULT '',
	ip TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX media_events_time ON media_events (time_us);

-- Console access log: every login attempt.
CREATE TABLE access_log (
	id {{pk}},
	time_us BIGINT NOT NULL,
	email TEXT NOT NULL,
	success INTEGER NOT NULL,
	ip TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX access_log_time ON access_log (time_us);
