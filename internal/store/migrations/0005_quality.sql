-- 0005: quality reports from edges (issue 6, item 6): the analytics category of retention.
-- Same conventions as 0001: {{pk}} token, times in Unix microseconds, one statement per ';' line end.
CREATE TABLE quality_reports (
	id {{pk}},
	seq BIGINT NOT NULL UNIQUE,
	time_us BIGINT NOT NULL,
	app_id TEXT NOT NULL
);
CREATE INDEX quality_reports_app_time ON quality_reports (app_id, time_us);
CREATE INDEX quality_reports_time ON quality_reports (time_us);
