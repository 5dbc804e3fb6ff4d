"""API keys: generation, hashing at rest, and the key store.

A key is ``sk-`` + 32 random bytes (URL-safe base64) from :mod:`secrets`. It is
shown once, at creation; the database keeps only its SHA-256 (a fast hash is
right here: the key has 256 bits of entropy, nothing to brute-force) and a
short hint (``sk-…wxyz``) so people can tell their keys apart. Lookups go by
hash and the stored digest is compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update

from .db import Database, api_keys, as_utc, utcnow

KEY_PREFIX = "sk-"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_hint(key: str) -> str:
    return f"{key[:3]}…{key[-4:]}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key record (never the key itself)."""

    id: str
    name: str
    key_hint: str
    owner_email: Optional[str] = None
    tier: str = "default"
    created_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    last_used_at: Optional[datetime] = None
    revoked: bool = False
    revoked_at: Optional[datetime] = None
    requests_per_minute: Optional[int] = None
    tokens_per_minute: Optional[int] = None
    allowed_models: Optional[tuple[str, ...]] = None
    request_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    static: bool = False

    def refusal(self, now: datetime) -> Optional[str]:
        """Why this key cannot be used now, or None."""
        if self.revoked:
            return "this API key has been revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return f"this API key expired at {self.expires_at.isoformat()}"
        return None

    def allows(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("created_at", "expires_at", "last_used_at", "revoked_at"):
            if out[name] is not None:
                out[name] = out[name].isoformat()
        if out["allowed_models"] is not None:
            out["allowed_models"] = list(out["allowed_models"])
        return out


class KeySpec(BaseModel):
    """What a caller may set on a new key (admin API body, CLI flags)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    owner_email: Optional[str] = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    tier: str = Field("default", min_length=1, max_length=64)
    expires_at: Optional[datetime] = None
    requests_per_minute: Optional[int] = Field(None, ge=0, le=1_000_000)
    tokens_per_minute: Optional[int] = Field(None, ge=0, le=1_000_000_000)
    allowed_models: Optional[list[str]] = Field(None, min_length=1)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: Optional[datetime]):
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2030-01-01T00:00:00Z")
        return value


class KeyLimits(BaseModel):
    """What may change on an existing key (admin ``PATCH``): its limits and expiry.

    A field left out stays as it is; ``null`` removes the key's own limit.
    """

    model_config = ConfigDict(extra="forbid")

    tier: str = Field("default", min_length=1, max_length=64)
    expires_at: Optional[datetime] = None
    requests_per_minute: Optional[int] = Field(None, ge=0, le=1_000_000)
    tokens_per_minute: Optional[int] = Field(None, ge=0, le=1_000_000_000)
    allowed_models: Optional[list[str]] = Field(None, min_length=1)

    _aware = field_validator("expires_at")(KeySpec._aware.__func__)

    @field_validator("allowed_models")
    @classmethod
    def _named(cls, value: Optional[list[str]]):
        if value is not None and not all(isinstance(m, str) and m.strip() for m in value):
            raise ValueError("model names must not be empty")
        return value


def static_key(secret: str) -> ApiKey:
    """The record of a key from ``API_KEYS`` (in memory only; its id derives from its hash)."""
    return ApiKey(id="static-" + hash_key(secret)[:12], name="API_KEYS", key_hint=key_hint(secret),
                  static=True)


def _record(row) -> ApiKey:
    m = row._mapping
    models = m["allowed_models"]
    return ApiKey(
        id=m["id"], name=m["name"], key_hint=m["key_hint"], owner_email=m["owner_email"],
        tier=m["tier"], created_at=as_utc(m["created_at"]), expires_at=as_utc(m["expires_at"]),
        last_used_at=as_utc(m["last_used_at"]), revoked=bool(m["revoked"]),
        revoked_at=as_utc(m["revoked_at"]), requests_per_minute=m["requests_per_minute"],
        tokens_per_minute=m["tokens_per_minute"],
        allowed_models=tuple(models) if models is not None else None,
        request_count=m["request_count"], prompt_tokens=m["prompt_tokens"],
        completion_tokens=m["completion_tokens"])


_COLUMNS = [c for c in api_keys.c if c.name != "key_hash"]


class KeyStore:
    """Create, find, list and revoke stored keys."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, spec: KeySpec) -> tuple[ApiKey, str]:
        """Store a new key; return its record and the key (the only time it is known)."""
        secret = generate_key()
        key_id = "key_" + secrets.token_hex(8)
        values = dict(spec.model_dump(), id=key_id, key_hash=hash_key(secret),
                      key_hint=key_hint(secret), created_at=utcnow(), revoked=False,
                      request_count=0, prompt_tokens=0, completion_tokens=0)
        with self.db.engine.begin() as conn:
            conn.execute(api_keys.insert().values(**values))
        return self.get(key_id), secret

    def get(self, key_id: str) -> Optional[ApiKey]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(api_keys.c.id == key_id)).first()
        return _record(row) if row else None

    def find(self, secret: str) -> Optional[ApiKey]:
        """The record of the key ``secret``, revoked or not; None if unknown."""
        digest = hash_key(secret)
        with self.db.engine.connect() as conn:
            row = conn.execute(select(api_keys.c.key_hash, *_COLUMNS)
                               .where(api_keys.c.key_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return _record(row)

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        query = select(*_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked.is_(False))
        with self.db.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def revoke(self, key_id: str) -> Optional[ApiKey]:
        with self.db.engine.begin() as conn:
            conn.execute(update(api_keys)
                         .where(api_keys.c.id == key_id, api_keys.c.revoked.is_(False))
                         .values(revoked=True, revoked_at=utcnow()))
        return self.get(key_id)

    def update(self, key_id: str, limits: KeyLimits) -> Optional[ApiKey]:
        """Change the fields set in ``limits``; None when there is no such key."""
        values = limits.model_dump(exclude_unset=True)
        if values:
            with self.db.engine.begin() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
        return self.get(key_id)

    def any_exists(self) -> bool:
        """Whether a key was ever stored: revoking the last key must not switch auth off."""
        with self.db.engine.connect() as conn:
            return conn.execute(select(api_keys.c.id).limit(1)).first() is not None
