"""Process execution: turning a RunSpec into a process tree, reading its output, stopping it."""
