"""Lab 03: llama.cpp and GGUF (the reference solution; src/ is the skeleton)."""
