"""Lab 02: vLLM's engine from the inside (paged KV cache, continuous batching, prefix caching),
then served over HTTP (part 2)."""
