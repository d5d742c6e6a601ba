-- 0006: login failure and request counters shared by every console on the database (issue 6, item 2), so that
-- a lockout holds whichever console a client reaches. counter_key is "login:e:<email>", "login:i:<ip>",
-- "reset:e:<email>" or "reset:i:<ip>"; a window restarts when it is older than its period; locked_until_us is 0
-- unless the key is locked out. Rows are deleted by the daily purge once their window and lock are over.
CREATE TABLE rate_counters (
	counter_key TEXT PRIMARY KEY,
	window_start_us BIGINT NOT NULL,
	count BIGINT NOT NULL,
	locked_until_us BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX rate_counters_window ON rate_counters (window_start_us);
