"""Lab 04: SGLang — constrained decoding, RadixAttention, structured programs (the reference solution; src/ is the
skeleton)."""
