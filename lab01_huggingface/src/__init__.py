"""Lab 01: Hugging Face transformers by hand (the reference solution; src/ is the skeleton)."""
