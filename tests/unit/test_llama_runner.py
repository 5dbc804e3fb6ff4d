"""The token loop: stop-sequence handling (pure functions), UTF-8 across tokens."""

from pathlib import Path

import pytest

from service.providers.llama_runner import Sampling, TokenRun, _first_stop, _partial_stop_len
from service.providers.local import model_id_for


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


class _Scripted:
    """The embedded model's real tokenizer, with generation replaced by a fixed token list."""

    def __init__(self, llama, tokens):
        self._llama, self._tokens, self._model = llama, tokens, llama._model
        self._input_ids, self.n_tokens = [], 0  # an empty KV cache

    def detokenize(self, tokens):
        return self._llama.detokenize(tokens)

    def set_seed(self, seed):
        pass

    def generate(self, *_args, **_kw):
        yield from self._tokens


@pytest.fixture(scope="module")
def tokenizer():
    import llama_cpp

    from service.providers.local import default_model_path

    return llama_cpp.Llama(model_path=str(default_model_path()), vocab_only=True, verbose=False)


@pytest.mark.parametrize("max_tokens", [4, 5])
def test_a_character_cut_by_max_tokens_is_dropped_not_replaced(tokenizer, max_tokens):
    tokens = tokenizer.tokenize("😃💡".encode(), add_bos=False, special=False)
    assert len(tokens) > 2, "each emoji takes several byte tokens with this tokenizer"
    run = TokenRun(_Scripted(tokenizer, tokens), [1], max_tokens=max_tokens, stop=[],
                   sampling=Sampling())
    pieces = [p.text for p in run]
    assert "".join(pieces) == "😃" and run.finish_reason == "length"
    assert all("\ufffd" not in p for p in pieces)  # never released half a character either


def test_whole_characters_split_across_tokens_come_through(tokenizer):
    tokens = tokenizer.tokenize("a😃💡b".encode(), add_bos=False, special=False)
    run = TokenRun(_Scripted(tokenizer, tokens), [1], max_tokens=len(tokens) + 1, stop=[],
                   sampling=Sampling())
    assert "".join(p.text for p in run) == "a😃💡b"


def test_a_cancelled_run_stops_at_the_next_token(tokenizer):
    import threading

    tokens = tokenizer.tokenize(b"one two three four", add_bos=False, special=False)
    cancel = threading.Event()
    run = TokenRun(_Scripted(tokenizer, tokens), [1], max_tokens=50, stop=[],
                   sampling=Sampling(), cancelled=cancel.is_set)
    it = iter(run)
    next(it)
    cancel.set()
    rest = list(it)
    assert run.finish_reason == "cancelled" and run.completion_tokens == 1
    assert "".join(p.text for p in rest) == ""

