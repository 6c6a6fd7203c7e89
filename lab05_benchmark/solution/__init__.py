"""Lab 05: benchmark the frameworks and choose (the reference solution; src/ is the skeleton)."""
