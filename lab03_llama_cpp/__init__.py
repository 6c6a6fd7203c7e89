"""Lab 03: llama.cpp, the GGUF format, converting, quantizing and running on a CPU."""
