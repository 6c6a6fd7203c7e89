"""Reference solution of lab 02 (the student skeleton in ``src/`` is generated from it)."""
