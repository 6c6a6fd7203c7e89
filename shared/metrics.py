"""The latency figures every lab reports, defined once (lab01 computes them, lab05 reuses them).

The definitions are vLLM's (``vllm bench serve``), so numbers from this course compare with
numbers from vLLM's own benchmark:

- TTFT: time from sending the request to receiving the first output token;
- ITL: every gap between two consecutive output tokens;
- TPOT: (end-to-end latency - TTFT) / (output tokens - 1), per request;
- E2EL: time from sending the request to receiving the last token.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class GenerationMetrics(BaseModel):
    """Latency and throughput of one generation request."""

    output_tokens: int = Field(ge=0, description="tokens generated")
    ttft_s: float = Field(ge=0, description="time to first token, seconds")
    tpot_s: float | None = Field(None, ge=0, description="time per output token after the first; "
                                                          "None with fewer than 2 tokens")
    itl_s: list[float] = Field(default_factory=list, description="inter-token latencies, seconds")
    e2e_s: float = Field(ge=0, description="end-to-end latency, seconds")
    tokens_per_s: float = Field(ge=0, description="output tokens / end-to-end latency")
    peak_memory_bytes: int | None = Field(None, ge=0, description="peak memory while generating")
    device: str = "cpu"
