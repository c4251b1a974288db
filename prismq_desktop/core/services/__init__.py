"""Services the window and the command line share (history delete, retention, export)."""
