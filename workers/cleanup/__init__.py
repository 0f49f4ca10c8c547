"""The cleanup Lambda (python3.12): executes a `cleanup` stage's payload with boto3."""
