CREATE TABLE ai_agent_kb_homeowner.homeowner_human_qa
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/classify-homeowner/tables/homeowner_human_qa/${run_id}/'
) AS
-- One row per prediction, beside the parsed features and the known target (where there is one).
SELECT
  p.id,
  s.years_since_first_job,
  s.job_tenure_years,
  s.num_jobs,
  s.seniority_level,
  s.education_level,
  s.graduation_year,
  s.degree_count,
  s.num_children,
  s.marital_status,
  s.household_size,
  s.income_usd,
  s.num_credit_cards,
  s.credit_history_years,
  s.has_retirement_account,
  s.account_age_years,
  s.posts_per_week,
  s.night_activity_share,
  s.emoji_rate,
  s.device_type,
  s.email_domain_age_years,

  s.homeowner AS known_homeowner,
  p.predicted_homeowner,
  p.probability,
  p.predicted_homeowner = s.homeowner AS correct,
  p.model_name,
  p.model_version,
  p.run_id
FROM ai_agent_kb_homeowner.homeowner_predictions p
JOIN ai_agent_kb_homeowner.homeowner_staging_features s ON s.id = p.id
