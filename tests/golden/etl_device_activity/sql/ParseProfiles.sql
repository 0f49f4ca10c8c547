CREATE TABLE ai_agent_kb_device_activity.device_activity_profiles
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/etl/device-activity/tables/device_activity_profiles/${run_id}/'
) AS
-- One row per distinct profile id: the fields this ETL reads, typed and cleaned as stepkit's staging
-- template does them (stepkit's macros serve the pipeline's own templates too).
WITH deduped AS (
  SELECT person_id AS id, min(profile_json) AS doc
  FROM ai_agent_kb.kb_person_profiles_2025q3
  WHERE person_id IS NOT NULL
  GROUP BY person_id
),
parsed AS (
  SELECT cast(id AS varchar) AS id, try(json_parse(doc)) AS j
  FROM deduped
),
extracted AS (
  SELECT
    id,
    lower(json_extract_scalar(j, '$.device.type')) AS device_type,
    lower(json_extract_scalar(j, '$.employment.seniority')) AS seniority_level,
    try_cast(json_extract_scalar(j, '$.activity.posts_per_week') AS double) AS posts_per_week,
    try_cast(json_extract_scalar(j, '$.activity.night_share') AS double) AS night_activity_share
  FROM parsed
  WHERE j IS NOT NULL
)
SELECT
  id,
  CASE WHEN device_type IN ('ios', 'android', 'desktop', 'tablet') OR device_type IS NULL THEN device_type ELSE 'other' END AS device_type,
  CASE WHEN seniority_level IN ('intern', 'junior', 'mid', 'senior', 'lead', 'executive') OR seniority_level IS NULL THEN seniority_level ELSE 'other' END AS seniority_level,
  CASE WHEN posts_per_week BETWEEN 0 AND 500 THEN posts_per_week END AS posts_per_week,
  CASE WHEN night_activity_share BETWEEN 0 AND 1 THEN night_activity_share END AS night_activity_share,
  '${run_id}' AS run_id
FROM extracted
