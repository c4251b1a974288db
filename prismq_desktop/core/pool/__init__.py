"""The warm worker pool (pattern 6): fork servers on POSIX, recycled workers on Windows."""
