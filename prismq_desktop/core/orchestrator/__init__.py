"""The orchestrator: one queue, one concurrency limit, retries, dead letters, the six patterns."""
