"""Fill-in-the-middle on chat-only backends (Gemini, Anthropic): an instruction and a
tagged user turn, since those models have no FIM tokens to be prompted with."""

from __future__ import annotations

FIM_INSTRUCTION = (
    "You fill a gap in a document. The text before the gap is between <prefix> and "
    "</prefix>, the text after it between <suffix> and </suffix>. Reply with exactly the "
    "text that belongs in the gap: no explanation, no code fences, and do not repeat the "
    "prefix or the suffix.")


def fim_user_text(prefix: str, suffix: str) -> str:
    """The user turn that carries the text around the gap."""
    return f"<prefix>{prefix}</prefix><suffix>{suffix}</suffix>"
