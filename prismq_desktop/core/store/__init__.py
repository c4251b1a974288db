"""Persistence: the SQLite registry of runs, dead letters, schedules and saved tasks."""
