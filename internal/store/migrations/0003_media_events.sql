-- 0003: media server logs (issue 6, item 5). Replaces the 0001 placeholder, which nothing wrote to.
-- Same conventions as 0001: {{pk}} token, times in Unix microseconds, one statement per ';' line end.
-- Never media, message content, tokens or secrets: only who, where, when and why, each value length-limited
-- by the ingester (internal/console/logs.go).
DROP TABLE media_events;

-- seq is the cluster event stream's sequence number: redelivered events are ignored (ON CONFLICT DO NOTHING).
-- app_id is empty for events without a project (guard blocks). os is derived from user_agent when recognisable.
CREATE TABLE media_events (
	id {{pk}},
	seq BIGINT NOT NULL UNIQUE,
	time_us BIGINT NOT NULL,
	app_id TEXT NOT NULL DEFAULT '',
	event_type TEXT NOT NULL,
	channel TEXT NOT NULL DEFAULT '',
	uid TEXT NOT NULL DEFAULT '',
	edge TEXT NOT NULL DEFAULT '',
	region TEXT NOT NULL DEFAULT '',
	ip TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT '',
	os TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT '',
	session TEXT NOT NULL DEFAULT '',
	track_id TEXT NOT NULL DEFAULT '',
	kind TEXT NOT NULL DEFAULT ''
);
CREATE INDEX media_events_app_time ON media_events (app_id, time_us);
CREATE INDEX media_events_app_channel_time ON media_events (app_id, channel, time_us);
CREATE INDEX media_events_app_uid_time ON media_events (app_id, uid, time_us);
CREATE INDEX media_events_time ON media_events (time_us);
