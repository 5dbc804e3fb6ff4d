"""Typed settings, read once from the environment and validated at start-up.

Field names are the environment variable names in lower case (``HELIOS_PORT``
→ ``helios_port``). :func:`load_settings` turns a validation failure into a
:class:`ConfigError` whose message names the variable, so both gunicorn's
master (``gunicorn.conf.py``) and ``create_app`` stop with a readable line.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

#: The seed's CA bundle, used for Vertex calls when present in the working directory.
DEFAULT_CA_BUNDLE = "CAChain_PROD.pem"


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


def _check_scheme(uri: str) -> None:
    from limits.storage import SCHEMES

    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in SCHEMES or scheme.startswith("async+"):
        raise ValueError(f"unknown storage scheme {scheme!r}; use memory:// or redis://host:port")


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

    # --- model routing (issue 13) ----------------------------------------
    models_file: Optional[Path] = Field(
        None, description="TOML model list (backends, public names, fallbacks); unset: "
                          "one backend per seed variable below.")

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
    httpx_max_connections: int = Field(1024, ge=1, le=10000)
    httpx_max_keepalive: int = Field(20, ge=1, le=10000)
    models_cache_seconds: float = Field(60.0, ge=0)

    # --- embedded local model ----------------------------------------------
    local_model_path: Optional[Path] = None
    local_n_ctx: int = Field(
        8192, ge=128, le=1_048_576,
        description="Context served (prompt + answer), in tokens; beyond the GGUF's trained "
                    "context, YaRN RoPE scaling stretches it. Default: SmolLM2's trained 8192, "
                    "which holds a Roo Code turn (docs/roo-code.md).")
    local_n_threads: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 1) - 1), ge=1, le=512,
        description="llama.cpp threads; default: all cores but one, which is left to the HTTP "
                    "threads (measured: benchmarks/local_model.py).")
    local_n_batch: int = Field(256, ge=8, le=65536)
    local_kv_cache_type: Literal["f16", "q8_0", "q4_0"] = Field(
        "f16", description="KV cache element type; q8_0 takes ~0.55x f16's memory but evaluated "
                           "a Roo prompt 1.8x slower here (needs LOCAL_FLASH_ATTN).")
    local_flash_attn: bool = Field(
        False, description="llama.cpp flash attention: ~75 MB less per worker after a long "
                           "prompt, ~6% slower prompts here; changes greedy outputs slightly.")
    local_max_wait_seconds: float = Field(
        30.0, ge=0, description="How long a request waits for the busy model.")
    local_max_queue: int = Field(8, ge=0, description="Requests allowed to wait for the model.")
    local_default_max_tokens: int = Field(512, ge=1)
    local_preload: Optional[bool] = Field(
        None, description="Load the model at start; default: when local is the default provider.")

    # --- Vertex AI Gemini (issue 3) ----------------------------------------------
    vertex_project: Optional[str] = Field(
        None, description="GCP project id; setting it enables the Vertex provider.")
    vertex_location: str = Field("us-central1", pattern=r"^[a-z0-9-]+$",
                                 description="Region, or 'global' for the global endpoint.")
    vertex_model: str = Field("gemini-2.5-flash", min_length=1,
                              description="Default Gemini model (retired PaLM names are mapped).")
    vertex_embedding_model: str = Field("text-embedding-005", min_length=1)
    vertex_base_url: Optional[str] = Field(
        None, description="Replaces scheme+host of the Vertex URL (a path prefix is kept).")
    vertex_thinking_budget: Optional[int] = Field(
        None, ge=-1, description="thinkingConfig.thinkingBudget sent with every request.")
    helix_access_token_cmd: str = Field("helix auth access-token print -a", min_length=1)
    helix_profile: Optional[str] = None
    helix_token_ttl: float = Field(600, gt=0, le=86400)
    helix_refresh_margin: float = Field(60, ge=0)
    helix_command_timeout: float = Field(30, gt=0, le=600)
    # Resolved at start-up: "helix" when the command is on PATH, else "adc".
    vertex_auth: Optional[Literal["helix", "adc"]] = None
    ssl_cert_file: Optional[Path] = Field(
        None, description=f"TLS bundle for Vertex calls; default {DEFAULT_CA_BUNDLE} if present.")
    custom_header_name: str = Field("x-custom-userid", pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    custom_user_id: Optional[str] = Field(default_factory=lambda: os.environ.get("USER") or None)

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

    # --- code completion at typing speed (issue 17) -----------------------------------
    helios_cache_entries: int = Field(
        1024, ge=0, le=1_000_000,
        description="Completion cache size per model (/complete, /infill); 0 = off.")
    helios_supersede: bool = Field(
        True, description="A newer completion request for the same file cancels the older one.")
    helios_max_predict_ms: int = Field(
        1000, ge=0, le=600_000,
        description="Longest generation of a /complete suggestion once its first line is "
                    "written (as llama.vim's t_max_predict_ms); 0 = no limit.")
    infill_max_extra_chars: int = Field(
        2000, ge=0, description="Characters of /infill input_extra context kept (newest chunks).")

    # --- Ollama API (issue 5) ---------------------------------------------------------
    ollama_api_version: str = Field(
        "0.9.0", pattern=r"^\d+\.\d+\.\d+([-+.][0-9A-Za-z.-]+)?$",
        description="Version /api/version reports; some Ollama clients gate features on it.")

    # --- API keys, usage, rate limits (issue 6) ---------------------------------------
    data_dir: Path = Field(Path("data"), description="Where the default SQLite database lives.")
    database_url: Optional[str] = Field(
        None, repr=False,
        description="sqlite:///file or postgresql://...; default: SQLite in DATA_DIR.")
    api_keys: Optional[str] = Field(None, repr=False,
                                    description="Comma-separated static API keys.")
    admin_api_key: Optional[str] = Field(None, repr=False,
                                         description="Bearer token of the /admin API.")
    require_auth: bool = Field(False, description="Demand a key even when none exists yet.")
    allow_unauthenticated: bool = Field(
        False, description="Allow a non-loopback HELIOS_HOST without any key.")
    auth_cache_seconds: float = Field(
        5.0, ge=0, le=5, description="How long a key lookup is cached (revocation delay).")
    ratelimit_storage_uri: str = Field(
        "memory://", description="flask-limiter storage: memory:// (per worker) or redis://.")
    ratelimit_strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = \
        "fixed-window"
    ratelimit_key_prefix: str = Field("gateway", description="Namespace of the limit counters.")
    rate_limit_per_key: int = Field(100, ge=0, description="Requests/minute per key; 0 = none.")
    rate_limit_per_ip: int = Field(
        100, ge=0, description="Requests/minute per client IP when auth is off; 0 = none.")
    forwarded_allow_ips: str = Field(
        "", description="Proxy addresses/networks whose X-Forwarded-For is believed; '*' = any.")
    tokens_per_minute_per_key: int = Field(
        0, ge=0, description="Tokens/minute per key unless the key says; 0 = none.")
    usage_queue_size: int = Field(10000, ge=1, description="Usage rows buffered per process.")
    usage_flush_seconds: float = Field(
        0.5, gt=0, le=3600, description="Longest time a usage row waits before being written.")


    # --- operations: metrics, readiness, custom endpoints (issue 7) ---------------------
    metrics_token: Optional[str] = Field(
        None, repr=False, description="Bearer token required by GET /metrics; unset: open.")
    readiness_cache_seconds: float = Field(
        10.0, ge=0, le=3600, description="How long an upstream probe result is reused by /readyz.")
    readiness_probe_timeout_seconds: float = Field(
        3.0, gt=0, le=60, description="Timeout of one upstream readiness probe.")
    custom_endpoints_file: Optional[Path] = Field(
        None, description="TOML file of [[endpoints]] served as static JSON.")

    # --- local model features: tools, JSON, FIM, embeddings (issue 8) -----------------
    local_embedding_model_path: Optional[Path] = Field(
        None, description="GGUF used for /v1/embeddings on the local backend; default: "
                          "LOCAL_MODEL_PATH's model (a weak embedder).")
    local_embedding_n_ctx: int = Field(512, ge=16, le=131_072,
                                       description="Longest input embedded, in tokens.")
    local_auto_tool_choice: Literal["model", "required"] = Field(
        "model", description='What tool_choice "auto" means locally: the model may answer in '
                             'text ("model") or must call a tool ("required").')

    # --- browser clients: CORS and the web console (issue 16) -------------------------
    cors_allow_origins: Optional[str] = Field(
        None, description="Comma-separated origins browsers may call from ('*' in an entry: "
                          "any characters but '/'; '*' alone: every origin); default: "
                          "localhost/127.0.0.1 on any port and editor webview schemes.")

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins(cls, value: Optional[str]):
        if value is None:
            return None
        entries = [v.strip() for v in value.split(",") if v.strip()]
        if not entries:
            raise ValueError("name at least one origin (e.g. http://localhost:*), or '*'")
        for entry in entries:
            if entry != "*" and "://" not in entry:
                raise ValueError(f"{entry!r} is not an origin like https://app.example.com")
        return ",".join(entries)

    # --- capacity: admission control, slow clients (issue 12) ----------------------------
    gateway_max_in_flight: int = Field(
        384, ge=1, le=100_000,
        description="Model requests (streams until their end) served at once per worker.")
    gateway_max_in_flight_per_upstream: int = Field(
        320, ge=1, le=100_000,
        description="Of those, at most this many per backend, so a slow one cannot take all.")
    gateway_max_waiting: int = Field(
        64, ge=0, le=100_000, description="Model requests allowed to wait for a slot per worker.")
    gateway_queue_wait_seconds: float = Field(
        10.0, ge=0, le=600, description="Longest wait for a slot before 503 overloaded.")
    client_read_timeout_seconds: float = Field(
        30.0, ge=0, le=3600,
        description="Time a client has to send a request's headers and body (gunicorn); 0 = off.")

    @field_validator("lm_studio_base_url", "internal_completions_url", "vertex_base_url")
    @classmethod
    def _urls(cls, value, info):
        return _http_url(info.field_name, value)

    @field_validator("local_model_path", "custom_endpoints_file", "local_embedding_model_path",
                     "models_file")
    @classmethod
    def _model_path(cls, value: Optional[Path]):
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("custom_user_id")
    @classmethod
    def _header_value(cls, value: Optional[str], info: ValidationInfo):
        if value and info.data.get("vertex_project") and not all(" " <= c <= "~" for c in value):
            raise ValueError("must be printable ASCII (it is sent as an HTTP header)")
        return value

    @field_validator("helix_refresh_margin")
    @classmethod
    def _margin(cls, value: float, info: ValidationInfo):
        ttl = info.data.get("helix_token_ttl")
        if ttl is not None and value >= ttl:
            raise ValueError(f"must be less than HELIX_TOKEN_TTL ({ttl:g})")
        return value

    @field_validator("helix_access_token_cmd")
    @classmethod
    def _command(cls, value: str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot parse the command: {exc}") from None
        if not argv:
            raise ValueError("the command is empty")
        return value

    @field_validator("vertex_auth", "ssl_cert_file", "vertex_project", "helix_profile",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("vertex_auth", mode="before")
    @classmethod
    def _lower_auth(cls, value):
        return value.lower() if isinstance(value, str) else value

    @field_validator("vertex_auth")
    @classmethod
    def _auth(cls, value: Optional[str], info: ValidationInfo):
        if not info.data.get("vertex_project") or "helix_access_token_cmd" not in info.data:
            return value
        found = shutil.which(shlex.split(info.data["helix_access_token_cmd"])[0]) is not None
        if value is None:
            return "helix" if found else "adc"
        if value == "helix" and not found:
            raise ValueError("the Helix command (HELIX_ACCESS_TOKEN_CMD) is not on PATH")
        return value

    @field_validator("ssl_cert_file")
    @classmethod
    def _ca_bundle(cls, value: Optional[Path], info: ValidationInfo):
        if value is None:
            default = Path(DEFAULT_CA_BUNDLE)
            return default.resolve() if default.is_file() else None
        if not value.is_file():
            if info.data.get("vertex_project"):  # only an error when Vertex would use it
                raise ValueError(f"no such file: {value}")
            return None
        return value.resolve()
    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: Optional[str]):
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0].split("+", 1)[0] if "://" in value else ""
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str):
        from .proxies import parse_networks

        parse_networks(value)
        return value

    @field_validator("ratelimit_storage_uri")
    @classmethod
    def _storage_uri(cls, value: str):
        _check_scheme(value)
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
