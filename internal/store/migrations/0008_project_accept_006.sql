-- 0007: a project may opt in to legacy "006" tokens (finding 1 of the hardening issue): off by default, since the
-- 006 signature does not bind the channel and uid apart (docs/tokens.md). Published in the signed project record.
ALTER TABLE projects ADD COLUMN accept_006 INTEGER NOT NULL DEFAULT 0;
