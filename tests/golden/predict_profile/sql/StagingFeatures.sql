CREATE TABLE ai_agent_kb_profile.profile_parsed_2025q3
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/predict-profile/tables/profile_parsed_2025q3/${run_id}/',
  partitioned_by = ARRAY['batch_group']
) AS
-- The only scan of the raw JSON: every feature and target in one pass; later stages read Parquet.
WITH deduped AS (
  -- Duplicate documents for one id: keep one, deterministically. A copy that parses wins (else one
  -- malformed copy would hide a good one), then the smallest text. Athena tests every copy here
  -- (CPU time; the bytes scanned are the same), the local engine only the copies of repeated ids.
  SELECT person_id AS id,
    coalesce(min(profile_json) FILTER (WHERE try(json_parse(profile_json)) IS NOT NULL), min(profile_json)) AS doc
  FROM ai_agent_kb.kb_person_profiles_2025q3
  WHERE person_id IS NOT NULL
  GROUP BY person_id
),
parsed AS (
  -- Parse the kept document; malformed JSON becomes NULL instead of failing the query. The id takes
  -- the declared source.id_type here, so every later table (and the predictions' DDL) agrees.
  SELECT cast(id AS varchar) AS id, try(json_parse(doc)) AS j
  FROM deduped
),
extracted AS (
  SELECT
    id,
    j IS NOT NULL AS parse_ok,
    try_cast(json_extract_scalar(j, '$.employment.years_since_first_job') AS double) AS years_since_first_job,
    try_cast(json_extract_scalar(j, '$.employment.tenure_years') AS double) AS job_tenure_years,
    try_cast(json_extract_scalar(j, '$.employment.num_jobs') AS integer) AS num_jobs,
    lower(json_extract_scalar(j, '$.employment.seniority')) AS seniority_level,
    lower(json_extract_scalar(j, '$.education.level')) AS education_level,
    try_cast(json_extract_scalar(j, '$.education.graduation_year') AS integer) AS graduation_year,
    try_cast(json_extract_scalar(j, '$.education.degrees') AS integer) AS degree_count,
    try_cast(json_extract_scalar(j, '$.family.children') AS integer) AS num_children,
    lower(json_extract_scalar(j, '$.family.marital_status')) AS marital_status,
    try_cast(json_extract_scalar(j, '$.household.size') AS integer) AS household_size,
    try_cast(json_extract_scalar(j, '$.finance.income_usd') AS double) AS income_usd,
    try_cast(json_extract_scalar(j, '$.finance.credit_cards') AS integer) AS num_credit_cards,
    try_cast(json_extract_scalar(j, '$.finance.credit_history_years') AS double) AS credit_history_years,
    try_cast(json_extract_scalar(j, '$.finance.retirement_account') AS boolean) AS has_retirement_account,
    try_cast(json_extract_scalar(j, '$.account.age_years') AS double) AS account_age_years,
    try_cast(json_extract_scalar(j, '$.activity.posts_per_week') AS double) AS posts_per_week,
    try_cast(json_extract_scalar(j, '$.activity.night_share') AS double) AS night_activity_share,
    try_cast(json_extract_scalar(j, '$.activity.emoji_rate') AS double) AS emoji_rate,
    lower(json_extract_scalar(j, '$.device.type')) AS device_type,
    try_cast(json_extract_scalar(j, '$.contact.email_domain_age_years') AS double) AS email_domain_age_years,
    try_cast(json_extract_scalar(j, '$.person.age') AS integer) AS age,
    try_cast(json_extract_scalar(j, '$.household.homeowner') AS boolean) AS homeowner,
    bitwise_and(from_big_endian_64(xxhash64(to_utf8(concat(cast(id AS varchar), 'sample:0')))), 9223372036854775807) AS sample_hash,
    bitwise_and(from_big_endian_64(xxhash64(to_utf8(concat(cast(id AS varchar), 'batch')))), 9223372036854775807) AS batch_hash
  FROM parsed
)
SELECT
  id,
  parse_ok,
  CASE WHEN years_since_first_job BETWEEN 0 AND 70 THEN years_since_first_job END AS years_since_first_job,
  CASE WHEN job_tenure_years BETWEEN 0 AND 60 THEN job_tenure_years END AS job_tenure_years,
  CASE WHEN num_jobs BETWEEN 0 AND 40 THEN num_jobs END AS num_jobs,
  CASE WHEN seniority_level IN ('intern', 'junior', 'mid', 'senior', 'lead', 'executive') OR seniority_level IS NULL THEN seniority_level ELSE 'other' END AS seniority_level,
  CASE WHEN education_level IN ('none', 'high_school', 'bachelor', 'master', 'phd') OR education_level IS NULL THEN education_level ELSE 'other' END AS education_level,
  CASE WHEN graduation_year BETWEEN 1940 AND 2030 THEN graduation_year END AS graduation_year,
  CASE WHEN degree_count BETWEEN 0 AND 6 THEN degree_count END AS degree_count,
  CASE WHEN num_children BETWEEN 0 AND 15 THEN num_children END AS num_children,
  CASE WHEN marital_status IN ('single', 'married', 'divorced', 'widowed') OR marital_status IS NULL THEN marital_status ELSE 'other' END AS marital_status,
  CASE WHEN household_size BETWEEN 1 AND 20 THEN household_size END AS household_size,
  CASE WHEN income_usd BETWEEN 0 AND 5000000 THEN income_usd END AS income_usd,
  CASE WHEN num_credit_cards BETWEEN 0 AND 30 THEN num_credit_cards END AS num_credit_cards,
  CASE WHEN credit_history_years BETWEEN 0 AND 80 THEN credit_history_years END AS credit_history_years,
  has_retirement_account AS has_retirement_account,
  CASE WHEN account_age_years BETWEEN 0 AND 30 THEN account_age_years END AS account_age_years,
  CASE WHEN posts_per_week BETWEEN 0 AND 500 THEN posts_per_week END AS posts_per_week,
  CASE WHEN night_activity_share BETWEEN 0 AND 1 THEN night_activity_share END AS night_activity_share,
  CASE WHEN emoji_rate BETWEEN 0 AND 1 THEN emoji_rate END AS emoji_rate,
  CASE WHEN device_type IN ('ios', 'android', 'desktop', 'tablet') OR device_type IS NULL THEN device_type ELSE 'other' END AS device_type,
  CASE WHEN email_domain_age_years BETWEEN 0 AND 40 THEN email_domain_age_years END AS email_domain_age_years,
  CASE WHEN age BETWEEN 13 AND 100 THEN age END AS age,
  homeowner AS homeowner,
  cast(sample_hash % 10000 AS integer) AS sample_bucket,
  cast(batch_hash % 898 AS integer) AS batch_id,
  -- Partition column last. A group holds 100 batches: one statement later writes one group.
  cast(batch_hash % 898 / 100 AS integer) AS batch_group
FROM extracted
