"""Turns a validated `Pipeline` into deployable artifacts: ASL, IAM policies, SQL."""
