-- 0005: quality reports from edges (console issue, items 5 and 6): the analytics category of retention.
-- Same conventions as 0001: {{pk}} token, times in Unix microseconds, one statement per ';' line end.
-- Never media or content: only figures and who, where, when.

-- One row per "quality" event of an edge session; seq is the cluster event stream's sequence number, so that
-- redelivered events are ignored (ON CONFLICT DO NOTHING). The figures summarise the session's audio and video
-- tracks over the report's interval (internal/console/quality.go): up_packets and down_packets are the packets
-- the edge received from the session and the session received from the edge (from its receiver reports); loss
-- is lost / expected over all of them, in [0, 1]; jitter_ms is the largest jitter of its tracks; bitrate_kbps is
-- the sum of its uplink bitrates; join_ms is its join time in the one report that carries it, else NULL.
CREATE TABLE quality_reports (
	id {{pk}},
	seq BIGINT NOT NULL UNIQUE,
	time_us BIGINT NOT NULL,
	app_id TEXT NOT NULL,
	channel TEXT NOT NULL DEFAULT '',
	uid TEXT NOT NULL DEFAULT '',
	session TEXT NOT NULL DEFAULT '',
	edge TEXT NOT NULL DEFAULT '',
	region TEXT NOT NULL DEFAULT '',
	interval_ms BIGINT NOT NULL DEFAULT 0,
	up_packets BIGINT NOT NULL DEFAULT 0,
	down_packets BIGINT NOT NULL DEFAULT 0,
	loss DOUBLE PRECISION NOT NULL DEFAULT 0,
	jitter_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
	bitrate_kbps DOUBLE PRECISION NOT NULL DEFAULT 0,
	join_ms BIGINT
);
CREATE INDEX quality_reports_app_time ON quality_reports (app_id, time_us);
CREATE INDEX quality_reports_time ON quality_reports (time_us);

-- A short human-readable summary for the logs page, e.g. "loss 0.0% jitter 2.1 ms 512 kbps"; empty for the
-- other event types.
ALTER TABLE media_events ADD COLUMN detail TEXT NOT NULL DEFAULT '';
