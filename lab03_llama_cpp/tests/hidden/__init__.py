"""Instructor-only tests (left out of the student edition): the same properties on inputs the
visible tests never show, so that code fitted to the visible cases does not pass."""
