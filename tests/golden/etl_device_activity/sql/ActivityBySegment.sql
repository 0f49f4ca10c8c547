CREATE TABLE ai_agent_kb_device_activity.device_activity_by_segment
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/etl/device-activity/tables/device_activity_by_segment/${run_id}/'
) AS
-- Posting activity per device type and seniority level: a table of the pipeline's own.
SELECT
  coalesce(device_type, 'unknown') AS device_type,
  coalesce(seniority_level, 'unknown') AS seniority_level,
  count(*) AS profiles,
  round(avg(posts_per_week), 3) AS avg_posts_per_week,
  round(avg(night_activity_share), 4) AS avg_night_share,
  '${run_id}' AS run_id
FROM ai_agent_kb_device_activity.device_activity_profiles
GROUP BY 1, 2
