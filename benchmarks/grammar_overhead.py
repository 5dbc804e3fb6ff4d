"""Grammar-constrained vs unconstrained generation speed on the embedded model.

Runs the same prompt through the gateway's own token loop (``TokenRun``, one
thread) under the JSON-object grammar, a JSON-schema grammar and the tool-call
grammar of four Roo-style tools (with and without the repetition penalty
constrained runs carry), each right after an unconstrained run of the same
prompt and seed, and prints the median of those side-by-side speed ratios
(tokens per second constrained / unconstrained) with their quartiles, so
machine load shared by both runs of a pair cancels out.

    python benchmarks/grammar_overhead.py [rounds] [max_tokens]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llama_cpp import Llama  # noqa: E402
from llama_cpp.llama_grammar import JSON_GBNF  # noqa: E402

from service.providers import grammars  # noqa: E402
from service.providers.llama_runner import Sampling, TokenRun  # noqa: E402
from service.providers.local import default_model_path  # noqa: E402


def _strict(props: dict) -> dict:
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


TOOLS = [
    ("read_file", _strict({"path": {"type": "string"}})),
    ("execute_command", _strict({"command": {"type": "string"},
                                 "cwd": {"type": ["string", "null"]}})),
    ("list_files", _strict({"path": {"type": "string"}, "recursive": {"type": "boolean"}})),
    ("write_to_file", _strict({"path": {"type": "string"}, "content": {"type": "string"},
                               "line_count": {"type": "integer"}})),
]
PERSON = _strict({"name": {"type": "string"}, "age": {"type": "integer"},
                  "skills": {"type": "array", "items": {"type": "string"}}})
PROMPT = ("<|im_start|>user\nDescribe a software engineer as JSON with name, age and skills."
          "<|im_end|>\n<|im_start|>assistant\n")


def _speed(llama, tokens, grammar, dry: bool, seed: int, max_tokens: int) -> float:
    run = TokenRun(llama, tokens, max_tokens=max_tokens, stop=["<|im_end|>"],
                   sampling=Sampling(temperature=0.8, seed=seed), grammar=grammar, dry=dry)
    start = time.perf_counter()
    for _ in run:
        pass
    return run.completion_tokens / (time.perf_counter() - start)


def main(rounds: int = 15, max_tokens: int = 48) -> None:
    llama = Llama(model_path=str(default_model_path()), n_ctx=1024, n_threads=1, verbose=False)
    tool_grammar = grammars.tool_grammar(llama, TOOLS, parallel=True)
    modes = {  # name: (grammar, repetition penalty as constrained runs carry it)
        "json_object": (grammars.compile_grammar(llama, JSON_GBNF, "bench"), True),
        "json_schema": (grammars.compile_grammar(
            llama, grammars.json_schema_grammar_text(PERSON), "bench"), True),
        "tool_calls": (tool_grammar, True),
        "tool_calls, no penalty": (tool_grammar, False),
    }
    tokens = llama.tokenize(PROMPT.encode(), add_bos=False, special=True)
    base_speeds: list[float] = []
    ratios: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        # Each constrained run is compared with an unconstrained run right next to it.
        for mode, (grammar, dry) in modes.items():
            base = _speed(llama, tokens, None, False, r, max_tokens)
            ratios[mode].append(_speed(llama, tokens, grammar, dry, r, max_tokens) / base)
            base_speeds.append(base)
    print(f"unconstrained: {statistics.median(base_speeds):.1f} tokens/s (median, 1 thread)")
    print(f"{'mode':<24}{'speed vs unconstrained (median)':>34}{'quartiles':>18}")
    for mode, values in ratios.items():
        q = statistics.quantiles(values, n=4)
        print(f"{mode:<24}{statistics.median(values):>33.2f}x{q[0]:>11.2f}-{q[2]:.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
