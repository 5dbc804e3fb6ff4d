"""``MODELS_FILE``: the model list (backends, public model names, fallbacks), validated once.

The file is TOML (docs/model-routing.md has a complete example)::

    default_model = "coder"            # optional: serves names no entry lists
    [router]
    allowed_fails = 2                  # consecutive failures before a cool-down
    cooldown_seconds = 30

    [backends.vllm]                    # a named instance of a kind
    kind = "openai"                    # openai | anthropic | vertex | internal | local
    base_url = "http://10.0.0.5:8000"
    api_key_env = "VLLM_API_KEY"       # the key is read from this variable, never the file

    [models.coder]                     # a public name clients use
    deployments = [{ backend = "vllm", model = "Qwen/Qwen2.5-Coder-32B", weight = 2 }]
    aliases = ["gpt-4o"]
    fallbacks = ["small"]
    context_window_fallbacks = ["big"]

Every problem stops start-up (or a reload) with a :class:`ConfigError` naming
the file, the entry and the field, e.g.
``MODELS_FILE: team.toml: models.coder.deployments[0].backend: no backend 'vlm'``.
Flask-free and provider-free: gunicorn's master parses the file here.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .settings import ConfigError, _http_url

SETTING = "MODELS_FILE"
Capability = Literal["tools", "vision", "embeddings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Discovery(_Strict):
    """Serve every id the backend's ``/v1/models`` lists, as ``prefix + id``."""

    prefix: str = ""


class _HttpBackend(_Strict):
    headers: dict[str, str] = Field(default_factory=dict)
    api_key_env: Optional[str] = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    ca_bundle: Optional[Path] = None
    connect_timeout_seconds: Optional[float] = Field(None, gt=0, le=600)
    request_timeout_seconds: Optional[float] = Field(None, gt=0, le=3600)
    max_retries: Optional[int] = Field(None, ge=0, le=10)
    max_concurrency: int = Field(64, ge=1, le=10000)

    @field_validator("ca_bundle")
    @classmethod
    def _file(cls, value: Optional[Path]):
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_set(cls, value: Optional[str]):
        if value is not None and not os.environ.get(value):
            raise ValueError(f"the environment variable {value} is not set")
        return value

    def api_key(self) -> Optional[str]:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class OpenAIBackend(_HttpBackend):
    kind: Literal["openai"]
    base_url: str
    discovery: Optional[Discovery] = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str):
        return _http_url("base_url", value)


class AnthropicBackend(_HttpBackend):
    """A Messages-API server: Anthropic's (``https://api.anthropic.com``) or a compatible one."""

    kind: Literal["anthropic"]
    base_url: str = Field(description="The server's root, without /v1.")
    anthropic_version: str = Field("2023-06-01", min_length=1,
                                   description="anthropic-version sent unless the client sent one.")
    default_max_tokens: int = Field(4096, ge=1, le=1_000_000,
                                    description="max_tokens for requests that name none "
                                                "(the Messages API requires one).")
    discovery: Optional[Discovery] = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str):
        return _http_url("base_url", value)


class InternalBackend(_HttpBackend):
    kind: Literal["internal"]
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str):
        return _http_url("url", value)


class VertexBackend(_HttpBackend):
    kind: Literal["vertex"]
    project: str = Field(min_length=1)
    location: str = Field("us-central1", pattern=r"^[a-z0-9-]+$")
    base_url: Optional[str] = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: Optional[str]):
        return _http_url("base_url", value)


class LocalBackend(_Strict):
    kind: Literal["local"]
    path: Path
    n_ctx: Optional[int] = Field(None, ge=128, le=1_048_576)
    max_concurrency: int = Field(1, ge=1, le=1, description="llama.cpp serves one at a time.")
    preload: bool = False

    @field_validator("path")
    @classmethod
    def _file(cls, value: Path):
        if not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value


Backend = Annotated[Union[OpenAIBackend, AnthropicBackend, InternalBackend, VertexBackend,
                          LocalBackend],
                    Field(discriminator="kind")]


class Deployment(_Strict):
    backend: str = Field(min_length=1)
    model: str = Field(min_length=1, description="The name the backend knows the model by.")
    weight: float = Field(1.0, gt=0, le=1000)


class ModelEntry(_Strict):
    deployments: list[Deployment] = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    context_length: Optional[int] = Field(None, ge=1)
    capabilities: list[Capability] = Field(default_factory=list)
    fallbacks: list[str] = Field(default_factory=list)
    context_window_fallbacks: list[str] = Field(default_factory=list)


class RouterOptions(_Strict):
    allowed_fails: int = Field(2, ge=1, le=100,
                               description="Consecutive failures before a cool-down.")
    cooldown_seconds: float = Field(30.0, ge=0, le=86400)


class ModelList(_Strict):
    default_model: Optional[str] = None
    router: RouterOptions = Field(default_factory=RouterOptions)
    backends: dict[str, Backend] = Field(min_length=1)
    models: dict[str, ModelEntry] = Field(min_length=1)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("openai", "anthropic", "internal", "vertex", "local") \
                and out.count(".") == 1 \
                and out.startswith("backends."):
            continue  # pydantic's tagged-union step, not a key of the file
        else:
            out += f".{part}" if out else str(part)
    return out


def _fail(path: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{SETTING}: {path}: {where}: {message}" if where
                       else f"{SETTING}: {path}: {message}")


def load(path: Path) -> ModelList:
    """Parse and validate the file; raise ConfigError naming the entry and field."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, "", f"cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, "", f"is not valid TOML: {exc}") from None
    try:
        model_list = ModelList.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            problems.append(f"{_loc(err['loc'])}: {msg}")
        raise _fail(path, "", "; ".join(problems)) from None
    _check_references(path, model_list)
    return model_list


def _check_references(path: Path, ml: ModelList) -> None:
    """Names that must exist: backends of deployments, fallback targets, unique public names."""
    public: dict[str, str] = {}
    for name, entry in ml.models.items():
        for i, alias in enumerate([name, *entry.aliases]):
            where = f"models.{name}" if i == 0 else f"models.{name}.aliases[{i - 1}]"
            if alias in public:
                raise _fail(path, where, f"the name {alias!r} is already used by "
                                         f"models.{public[alias]}")
            public[alias] = name
    for name, entry in ml.models.items():
        for i, dep in enumerate(entry.deployments):
            backend = ml.backends.get(dep.backend)
            if backend is None:
                raise _fail(path, f"models.{name}.deployments[{i}].backend",
                            f"no backend {dep.backend!r} (known: {', '.join(sorted(ml.backends))})")
            if backend.kind == "local" and "embeddings" in entry.capabilities:
                pass  # the local backend embeds with its own model; allowed
        for field in ("fallbacks", "context_window_fallbacks"):
            for i, target in enumerate(getattr(entry, field)):
                if target not in public:
                    raise _fail(path, f"models.{name}.{field}[{i}]",
                                f"no model or alias {target!r}")
                if public[target] == name:
                    raise _fail(path, f"models.{name}.{field}[{i}]",
                                "a model cannot fall back to itself")
    if ml.default_model is not None and ml.default_model not in public:
        raise _fail(path, "default_model", f"no model or alias {ml.default_model!r}")


# ---- the list in force (gunicorn's master loads it; forked workers inherit it) -------------
_active: Optional[tuple[Path, ModelList]] = None


def activate(path: Path) -> ModelList:
    """Load ``path`` and make it the list new workers use; on error the old list stays."""
    global _active
    model_list = load(path)
    _active = (Path(path), model_list)
    return model_list


def activate_or_keep(path: Path, log) -> None:
    """gunicorn.conf.py (start and every HUP): the first load must succeed; a bad file
    at a reload is logged and refused, and the list already in force stays."""
    if _active is None:
        activate(path)
        return
    try:
        activate(path)
    except ConfigError as exc:
        log.error("%s; reload refused, the previous model list stays", exc.code)
    else:
        log.info("%s: %s reloaded", SETTING, path)


def active(path: Path) -> ModelList:
    """The list for ``path``: the one the master validated, else read now (dev server, tests)."""
    if _active is not None and _active[0] == Path(path):
        return _active[1]
    return load(path)
