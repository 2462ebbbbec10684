-- Earnings are capped per UTC day (SERVER_POINTS_DAILY_CAP): the award reads the day's sum of
-- one user's log, one range of this index.
CREATE INDEX ix_point_log_day ON point_log (user_id, created_at);
