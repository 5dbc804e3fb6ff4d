"""``python -m service keys create|list|show|revoke|usage``: manage keys from a shell;
``python -m service config-docs``: regenerate docs/configuration.md from the settings.

Reads the same settings as the server (``DATABASE_URL`` / ``DATA_DIR``), so it
works on the database a running gateway uses. ``--json`` prints machine-readable
output; a new key is printed once and never again.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta, timezone
from typing import Optional, Sequence

import orjson
from pydantic import ValidationError

from . import config_docs
from .db import open_database
from .keys import ApiKey, KeySpec, KeyStore
from .settings import load_settings
from .usage import usage_report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m service",
                                description="Manage the gateway's API keys and read their usage.")
    top = p.add_subparsers(dest="area", required=True)
    config_docs.add_arguments(top.add_parser(
        "config-docs", help="write docs/configuration.md from the settings' descriptions"))
    keys = top.add_parser("keys", help="API keys and their usage")
    sub = keys.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", default="")
    create.add_argument("--owner", dest="owner_email", help="owner's email")
    create.add_argument("--tier", default="default")
    create.add_argument("--rpm", type=int, dest="requests_per_minute",
                        help="requests per minute (default RATE_LIMIT_PER_KEY; 0 = no limit)")
    create.add_argument("--tpm", type=int, dest="tokens_per_minute",
                        help="tokens per minute (default TOKENS_PER_MINUTE_PER_KEY; 0 = no limit)")
    create.add_argument("--models", help="comma-separated models this key may use (default: all)")
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires", help="expiry, ISO 8601 with zone, e.g. 2030-01-01T00:00Z")
    expiry.add_argument("--expires-days", type=float, help="expiry in days from now")

    lst = sub.add_parser("list", help="list keys")
    lst.add_argument("--active", action="store_true", help="hide revoked keys")
    for name, text in (("show", "show one key"), ("revoke", "revoke a key")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("key_id")
    usage = sub.add_parser("usage", help="totals per key, model and day")
    usage.add_argument("--key", dest="key_id", help="only this key id")
    usage.add_argument("--since", type=date.fromisoformat, help="first day, YYYY-MM-DD")
    usage.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD")
    for cmd in (create, lst, usage, *(sub.choices[n] for n in ("show", "revoke"))):
        cmd.add_argument("--json", action="store_true", help="print JSON")
    return p


def _spec(args) -> KeySpec:
    expires: Optional[datetime] = None
    if args.expires_days is not None:
        expires = datetime.now(timezone.utc) + timedelta(days=args.expires_days)
    elif args.expires:
        expires = args.expires
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    return KeySpec(name=args.name, owner_email=args.owner_email, tier=args.tier,
                   expires_at=expires, requests_per_minute=args.requests_per_minute,
                   tokens_per_minute=args.tokens_per_minute, allowed_models=models)


def _printable(value) -> str:
    """``value`` as text with control and format characters escaped: a key name must not
    move the cursor, clear the screen or reorder text in an operator's terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def _print_key(key: ApiKey, as_json: bool, secret: Optional[str] = None) -> None:
    if as_json:
        out = key.public() if secret is None else {"key": secret, **key.public()}
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    if secret is not None:
        print(secret)
        print("(store this key now: it is shown only once)", file=sys.stderr)
    for name, value in key.public().items():
        if value is not None and name != "static":
            print(f"{name:20} {_printable(value)}")


def _table(rows: list[dict], columns: Sequence[str]) -> None:
    cells = [[_printable("" if r[c] is None else r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.area == "config-docs":
        return config_docs.run(args)
    try:
        spec = _spec(args) if args.command == "create" else None
    except ValidationError as exc:
        err = exc.errors()[0]
        print(f"error: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    db = open_database(load_settings())
    try:
        store = KeyStore(db)
        if args.command == "create":
            key, secret = store.create(spec)
            _print_key(key, args.json, secret)
        elif args.command == "list":
            keys = store.list(include_revoked=not args.active)
            if args.json:
                print(orjson.dumps([k.public() for k in keys], option=orjson.OPT_INDENT_2).decode())
            else:
                _table([k.public() for k in keys], ("id", "name", "owner_email", "tier", "key_hint",
                                                    "revoked", "request_count", "last_used_at"))
        elif args.command in ("show", "revoke"):
            key = store.get(args.key_id) if args.command == "show" else store.revoke(args.key_id)
            if key is None:
                print(f"error: no API key with id '{args.key_id}'", file=sys.stderr)
                return 1
            _print_key(key, args.json)
        elif args.command == "usage":
            rows = usage_report(db, key_id=args.key_id, since=args.since, until=args.until)
            if args.json:
                print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
            else:
                _table(rows, ("day", "key_id", "model", "requests", "prompt_tokens",
                              "completion_tokens", "errors"))
        return 0
    finally:
        db.dispose()
