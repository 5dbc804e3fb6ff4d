"""Stop-sequence handling of the token loop (pure functions)."""

from service.providers.llama_runner import _first_stop, _partial_stop_len
from service.providers.local import model_id_for
from pathlib import Path


def test_partial_stop_is_held_back():
    assert _partial_stop_len("hello <|im", ["<|im_end|>"], 10) == 4
    assert _partial_stop_len("hello", ["<|im_end|>"], 10) == 0
    assert _partial_stop_len("a\n", ["\n\n"], 2) == 1


def test_first_stop_picks_earliest():
    assert _first_stop("ab\n\ncd;", ["\n\n", ";"]) == 2
    assert _first_stop("abc", [";"]) is None


def test_model_id_from_file_name():
    assert model_id_for(Path("SmolLM2-135M-Instruct.Q4_1.gguf")) == "smollm2-135m-instruct"
    assert model_id_for(Path("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")) == "qwen2.5-coder-1.5b-instruct"
    assert model_id_for(Path("model-f16.gguf")) == "model"
