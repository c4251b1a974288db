"""Periodic runs (pattern 5): triggers and the scheduler loop."""
