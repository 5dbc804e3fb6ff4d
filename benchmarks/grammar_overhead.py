"""Grammar-constrained vs unconstrained generation speed on the embedded model.

Runs the same prompt through the gateway's own token loop (``TokenRun``)
unconstrained, under the JSON-object grammar, under a JSON-schema grammar and
under the tool-call grammar of four Roo-style tools (with and without the
repetition penalty constrained runs carry), interleaved round by round so
machine load hits every mode alike, and prints tokens per second and each
mode's speed as a ratio of the unconstrained speed.

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


def main(rounds: int = 5, max_tokens: int = 64) -> None:
    llama = Llama(model_path=str(default_model_path()), n_ctx=1024, n_threads=2, verbose=False)
    modes = {
        "unconstrained": None,
        "tool_calls, grammar only": grammars.tool_grammar(llama, TOOLS, parallel=True),
        "json_object": grammars.compile_grammar(llama, JSON_GBNF, "bench"),
        "json_schema": grammars.compile_grammar(
            llama, grammars.json_schema_grammar_text(PERSON), "bench"),
        "tool_calls": grammars.tool_grammar(llama, TOOLS, parallel=True),
    }
    tokens = llama.tokenize(PROMPT.encode(), add_bos=False, special=True)
    speeds: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        for mode, grammar in modes.items():
            run = TokenRun(llama, tokens, max_tokens=max_tokens, stop=["<|im_end|>"],
                           sampling=Sampling(temperature=0.8, seed=r), grammar=grammar,
                           dry=grammar is not None and "only" not in mode)
            start = time.perf_counter()
            for _ in run:
                pass
            elapsed = time.perf_counter() - start
            speeds[mode].append(run.completion_tokens / elapsed)
    base = statistics.median(speeds["unconstrained"])
    print(f"{'mode':<26}{'tokens/s (median)':>20}{'speed vs unconstrained':>26}")
    for mode, values in speeds.items():
        med = statistics.median(values)
        print(f"{mode:<26}{med:>20.1f}{med / base:>25.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
