"""Lab 03 tests, grouped by task."""
