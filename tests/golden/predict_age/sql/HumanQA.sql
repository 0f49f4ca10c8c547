CREATE TABLE ai_agent_kb_predict_age.predict_age_human_qa
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/predict-age/tables/predict_age_human_qa/${run_id}/'
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

  s.age AS known_age,
  p.predicted_age,
  p.lower_bound,
  p.upper_bound,
  p.confidence_score,
  abs(p.predicted_age - s.age) AS abs_error,
  s.age BETWEEN p.lower_bound AND p.upper_bound AS known_in_interval,
  p.model_name,
  p.model_version,
  p.run_id
FROM ai_agent_kb_predict_age.predict_age_ml_predictions p
JOIN ai_agent_kb_predict_age.predict_age_staging_parsed_features_2025q3 s ON s.id = p.id
