"""Token counts without a tokenizer, for streams that end before their usage chunk.

A backend reports a stream's token counts in its last chunk. When the client
hangs up first (or the gateway stops reading, e.g. a finished Helios
suggestion), that chunk never comes; the tokens were still spent and are still
accounted (usage rows, the key's tokens-per-minute limit). :class:`StreamMeter`
(``ChunkStream.spent``) then takes, best first: the provider's own running
count (the local model counts its tokens exactly), usage the backend already
reported mid-stream, else what was relayed: one completion token per
content-bearing chunk (the unit OpenAI-compatible servers stream in) and the
prompt estimated here at ~4 characters per token (OpenAI's rule of thumb).
"""

from __future__ import annotations

import math

from .types import GenerationRequest

CHARS_PER_TOKEN = 4
_PER_MESSAGE = 4  # role and separators of a chat template, per message


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimated_prompt_tokens(request: GenerationRequest) -> int:
    """The prompt's size in tokens, estimated from its text."""
    if request.kind == "chat":
        return sum(estimate_tokens(m.text()) + _PER_MESSAGE for m in request.messages)
    return estimate_tokens(request.prompt) + estimate_tokens(request.suffix or "")
