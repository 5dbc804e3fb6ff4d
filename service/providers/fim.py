"""Fill-in-the-middle prompts for the local model.

With FIM tokens (the GGUF declares ``tokenizer.ggml.fim_pre_token_id`` /
``fim_suf`` / ``fim_mid``, or llama.cpp recognises them in the vocabulary, or
the tokenizer has ``<fim_prefix>``/``<fim_suffix>``/``<fim_middle>`` style
single tokens) the prompt is the usual prefix-suffix-middle order::

    <PRE> prefix <SUF> suffix <MID>   → the model writes the middle

Without them (SmolLM2's GGUF has none) the documented fallback is prompt-based:
the model continues the prefix alone, generation stops where the output
reaches the suffix's first non-blank line, and any tail of the output that
repeats the start of the suffix is dropped (:class:`SuffixGuard`). Either way
the result is only the middle: never the prefix, never the suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import llama_cpp

from .llama_runner import Piece

# Spellings of FIM tokens across model families, tried when the GGUF's metadata is silent.
_SPELLINGS = (
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),         # StarCoder, SmolLM-style
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),   # Qwen2.5-Coder
    ("<PRE>", "<SUF>", "<MID>"),                              # CodeLlama
)


@dataclass(frozen=True, slots=True)
class FimTokens:
    prefix: int
    suffix: int
    middle: int


def fim_tokens(llama) -> Optional[FimTokens]:
    """The model's FIM token ids, or None when it has none."""
    vocab = llama._model.vocab
    ids = (llama_cpp.llama_vocab_fim_pre(vocab), llama_cpp.llama_vocab_fim_suf(vocab),
           llama_cpp.llama_vocab_fim_mid(vocab))
    if min(ids) >= 0:
        return FimTokens(*ids)
    for spelling in _SPELLINGS:
        found = [_single_token(llama, s) for s in spelling]
        if all(t is not None for t in found):
            return FimTokens(*found)
    return None


def _single_token(llama, text: str) -> Optional[int]:
    toks = llama.tokenize(text.encode(), add_bos=False, special=True)
    return toks[0] if len(toks) == 1 else None


def fim_prompt(llama, prefix: str, suffix: str, add_bos: bool) -> tuple[list[int], list[str]]:
    """Prompt token ids and extra stop strings for a prefix/suffix pair."""
    toks = fim_tokens(llama)
    if toks is None:
        return llama.tokenize(prefix.encode(), add_bos=add_bos, special=False), _fallback_stops(suffix)
    head = [llama.token_bos()] if add_bos and llama.token_bos() >= 0 else []
    body = (head + [toks.prefix] + llama.tokenize(prefix.encode(), add_bos=False, special=False)
            + [toks.suffix] + llama.tokenize(suffix.encode(), add_bos=False, special=False)
            + [toks.middle])
    return body, []


def _fallback_stops(suffix: str) -> list[str]:
    """Stop where the continuation reaches the suffix's first non-blank line."""
    for line in suffix.splitlines():
        if line.strip():
            return [line.strip()]
    return []


class SuffixGuard:
    """Holds back output that may be the start of ``suffix`` and drops it at the end."""

    def __init__(self, suffix: str):
        self.suffix = suffix

    def wrap(self, pieces: Iterator[Piece]) -> Iterator[Piece]:
        held, held_lp = "", []
        for piece in pieces:
            held += piece.text
            held_lp.extend(piece.logprobs)
            keep = overlap(held, self.suffix)
            if len(held) > keep:
                yield Piece(held[: len(held) - keep], held_lp)
                held, held_lp = held[len(held) - keep:], []
        # What is still held repeats the suffix's start: never sent.


def overlap(text: str, suffix: str) -> int:
    """Length of the longest tail of ``text`` that is a head of ``suffix``."""
    for n in range(min(len(text), len(suffix)), 0, -1):
        if suffix.startswith(text[-n:]):
            return n
    return 0
