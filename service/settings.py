"""Typed settings, read once from the environment and validated at start-up.

Field names are the environment variable names in lower case (``HELIOS_PORT``
→ ``helios_port``). :func:`load_settings` turns a validation failure into a
:class:`ConfigError` whose message names the variable, so both gunicorn's
master (``gunicorn.conf.py``) and ``create_app`` stop with a readable line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class ConfigError(SystemExit):
    """A bad configuration value; exits the process with its message."""

    def __init__(self, message: str):
        super().__init__(f"configuration error: {message}")
        self.message = message


def _http_url(name: str, value: Optional[str]) -> Optional[str]:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Every setting of the gateway. See README's configuration table."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore",
                                      validate_default=True)

    # --- server ---------------------------------------------------------
    helios_host: str = Field("127.0.0.1", description="Bind address.")
    helios_port: int = Field(8000, ge=1, le=65535, description="Bind port.")
    helios_model: Optional[str] = Field(
        None, description="Model used by /complete; default: the default provider's model.")
    helios_debug: bool = False
    log_level: LogLevel = "info"
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024,
                                description="Largest accepted request body.")

    # --- upstream HTTP providers -----------------------------------------
    lm_studio_base_url: Optional[str] = Field(
        None, description="OpenAI-compatible upstream, without /v1.")
    upstream_api_key: Optional[str] = Field(None, repr=False)
    internal_completions_url: Optional[str] = None
    request_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    connect_timeout_seconds: float = Field(5.0, gt=0, le=600)
    request_max_retries: int = Field(2, ge=0, le=10)
    retry_backoff_seconds: float = Field(0.5, ge=0, le=60)
    retry_after_max_seconds: float = Field(10.0, ge=0, le=600)
    httpx_max_connections: int = Field(100, ge=1, le=10000)
    httpx_max_keepalive: int = Field(20, ge=1, le=10000)
    models_cache_seconds: float = Field(60.0, ge=0)

    # --- embedded local model ----------------------------------------------
    local_model_path: Optional[Path] = None
    local_n_ctx: int = Field(2048, ge=128, le=1_048_576)
    local_n_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=512)
    local_n_batch: int = Field(256, ge=8, le=65536)
    local_max_wait_seconds: float = Field(
        30.0, ge=0, description="How long a request waits for the busy model.")
    local_max_queue: int = Field(8, ge=0, description="Requests allowed to wait for the model.")
    local_default_max_tokens: int = Field(512, ge=1)
    local_preload: Optional[bool] = Field(
        None, description="Load the model at start; default: when local is the default provider.")

    # --- Vertex AI Gemini (issue 3) ----------------------------------------------

    # --- Helios code completion (issue 4) -------------------------------------------
    helios_default_max_tokens: int = Field(
        100, ge=1, description="/complete max_tokens when the request sets none.")
    helios_default_temperature: float = Field(
        0.1, ge=0, le=1, description="/complete temperature when the request sets none.")
    helios_max_tokens_limit: int = Field(
        512, ge=1, description="Largest max_tokens /complete accepts (400 beyond).")
    helios_max_prefix_chars: int = Field(
        4000, ge=100, description="Code before the cursor kept in the prompt (its end).")
    helios_max_suffix_chars: int = Field(
        1000, ge=0, description="Code after the cursor sent for fill-in-the-middle (its start).")
    helios_rate_limit_per_second: float = Field(
        10.0, ge=0, description="Sustained /complete requests per second per client; 0 = off.")
    helios_rate_limit_burst: int = Field(
        20, ge=1, description="Requests a client may send at once before the rate applies.")
    helios_max_concurrent: int = Field(
        5, ge=1, le=10000, description="Completions running at once per process.")
    helios_queue_wait_seconds: float = Field(
        0.25, ge=0, le=30, description="How long a completion waits for a free slot before 429.")

    # --- Ollama API (issue 5) ---------------------------------------------------------

    # --- API keys, usage, rate limits (issue 6) ---------------------------------------

    # --- operations: metrics, readiness, custom endpoints (issue 7) ---------------------

    # --- local model features: tools, JSON, FIM, embeddings (issue 8) -----------------

    @field_validator("lm_studio_base_url", "internal_completions_url")
    @classmethod
    def _urls(cls, value, info):
        return _http_url(info.field_name, value)

    @field_validator("local_model_path")
    @classmethod
    def _model_path(cls, value: Optional[Path]):
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value


def load_settings(**overrides) -> Settings:
    """Read settings from the environment (``overrides`` win); raise ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {msg} (got {err.get('input')!r})")
        raise ConfigError("; ".join(problems)) from None
