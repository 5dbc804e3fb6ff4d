"""The gateway under gunicorn (gthread) with a MODELS_FILE of LLMs and an embedding model."""

from __future__ import annotations

from pathlib import Path

import pytest

MODELS = """
[backends.up]
kind = "openai"
base_url = "{upstream}"

[models.coder]
deployments = [{{ backend = "up", model = "echo-coder" }}]
context_length = 32768
capabilities = ["tools"]

[models."team/vision-8k"]
deployments = [{{ backend = "up", model = "echo-vision" }}]
context_length = 8192
capabilities = ["vision"]

[models.nocontext]
deployments = [{{ backend = "up", model = "echo-x" }}]

[models.embed]
deployments = [{{ backend = "up", model = "echo-embed" }}]
context_length = 512
capabilities = ["embeddings"]
"""


@pytest.fixture(scope="module")
def models_file(up, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lmstudio") / "models.toml"
    path.write_text(MODELS.format(upstream=up.url))
    return path
