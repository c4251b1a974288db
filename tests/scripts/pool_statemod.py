"""A module with a global that pool_state.py changes."""
COUNTER = 0
