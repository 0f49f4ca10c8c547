CREATE TABLE ai_agent_kb_seniority.seniority_human_qa
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/classify-seniority/tables/seniority_human_qa/${run_id}/'
) AS
-- One row per prediction, beside the parsed features and the known target (where there is one).
SELECT
  p.id,
  s.years_since_first_job,
  s.job_tenure_years,
  s.num_jobs,
  s.education_level,
  s.graduation_year,
  s.degree_count,
  s.num_children,
  s.marital_status,
  s.homeowner,
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

  s.seniority_level AS known_seniority_level,
  p.predicted_seniority_level,
  p.probability,
  p.class_probabilities,
  p.predicted_seniority_level = s.seniority_level AS correct,
  p.model_name,
  p.model_version,
  p.run_id
FROM ai_agent_kb_seniority.seniority_predictions p
JOIN ai_agent_kb_seniority.seniority_staging_features s ON s.id = p.id
