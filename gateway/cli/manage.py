"""The rest of local administration (issue 14 item 4): `clients show|update|disable|enable|usage`,
expiring keys and secrets, `secrets list`, `public-keys add|list|revoke` and `audit`. Like the
other identity commands, they work on the store directly (actor `cli` in the audit log) and
validate input exactly as the admin API does (gateway.identity.service)."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli.common import ACTOR, CommandError, output, output_done, output_list
from gateway.config import Config
from gateway.errors import InvalidRequest
from gateway.identity import service
from gateway.identity.expiry import expiry_from, moment_of
from gateway.store import Missing, Store
from gateway.units import parse_duration

Handler = Callable[[argparse.Namespace, Store, Config], int]
Command = Callable[[Any, str, str, Handler], argparse.ArgumentParser]


# --- options shared by the credential commands ------------------------------------------------


def add_expiry(parser: argparse.ArgumentParser) -> None:
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--expires-in", metavar="DURATION", help="expire after this long (30d, 12h, 3600s)")
    when.add_argument(
        "--expires-at", metavar="TIME", help="expire at this ISO 8601 time (2030-01-31T12:00:00Z)"
    )


def expiry_of(args: argparse.Namespace) -> str | None:
    """The stored expiry the options ask for, validated as the admin API validates it."""
    body: dict[str, Any] = {}
    if args.expires_in is not None:
        try:
            body["expiresIn"] = round(parse_duration(args.expires_in))
        except ValueError as exc:
            raise InvalidRequest(f"--expires-in: {exc}") from None
    if args.expires_at is not None:
        body["expiresAt"] = args.expires_at
    return expiry_from(body)


def _lifecycle(item: Any) -> str:
    parts = []
    if item.expires_at is not None:
        parts.append(f"{'expired' if item.expired(time.time()) else 'expires'} {item.expires_at}")
    parts.append(f"last used {item.last_used or 'never'}")
    return "  ".join(parts)


def describe_key(key: Any) -> str:
    return f"{key.key_id}  created {key.created_at}  {_lifecycle(key)}"


# --- clients -----------------------------------------------------------------------------------


def client_commands(sub: Any, command: Command) -> None:
    command(sub, "show", "show a client, its keys and its limits", _show).add_argument("client_id")
    update = command(sub, "update", "change a client's fields (those given)", _update)
    update.add_argument("client_id")
    update.add_argument("--name")
    update.add_argument("--description")
    update.add_argument("--scope", action="append", help="an allowed scope (repeat; replaces the list)")
    update.add_argument("--audience", action="append", help="an allowed audience (repeat; replaces the list)")
    update.add_argument(
        "--token-lifetime", metavar="SECONDS", type=int, help="60 to 86400; 0 for the default"
    )
    update.add_argument(
        "--rate-limit",
        metavar="N/WINDOW",
        help="requests per window for all of its calls, such as 100/60s or 5000/1h; none removes it",
    )
    update.add_argument("--burst", type=int, help="requests at once (with --rate-limit; default N)")
    command(sub, "disable", "refuse every credential of a client (within a second)", _disable).add_argument(
        "client_id"
    )
    command(sub, "enable", "accept a disabled client's credentials again", _enable).add_argument("client_id")
    usage = command(sub, "usage", "a client's request counts per hour and route", _usage)
    usage.add_argument("client_id")
    usage.add_argument(
        "--from", dest="start", metavar="TIME", help="ISO 8601 (default: 24 hours before --to)"
    )
    usage.add_argument("--to", dest="end", metavar="TIME", help="ISO 8601 (default: now)")


def _client(store: Store, client_id: str) -> Any:
    client = store.get_client(client_id)
    if client is None:
        raise Missing(client_id)
    return client


def _show(args: argparse.Namespace, store: Store, config: Config) -> int:
    client = _client(store, args.client_id)
    keys = store.list_access_keys(client.client_id, with_expired=True)
    secrets = store.list_client_secrets(client.client_id, with_expired=True)
    data = service.render_client(client, keys)
    data["verificationKeys"] = [service.render_key(k) for k in keys]
    data["secrets"] = [service.render_secret(s) for s in secrets]
    limit = client.rate_limit
    lines = [
        f"{client.client_id}  {client.name}{'  (disabled)' if client.disabled else ''}",
        f"  tenant      {client.tenant or '-'}",
        f"  scopes      {' '.join(client.scopes) or '-'}",
        f"  audiences   {' '.join(client.audiences) or '-'}",
        f"  rate limit  {_limit_text(limit) if limit else 'none'}",
        f"  created     {client.created_at}",
        *(f"  key         {describe_key(k)}" for k in keys),
        *(f"  secret      {s.secret_id}  created {s.created_at}  {_lifecycle(s)}" for s in secrets),
    ]
    output(args, data, "\n".join(lines))
    return 0


def _limit_text(limit: Any) -> str:
    text = f"{limit.requests}/{limit.window:g}s"
    return text + (f" (burst {limit.burst})" if limit.burst is not None else "")


_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")


def rate_limit_body(text: str, burst: int | None) -> dict[str, Any] | None:
    """`100/60s` → the admin API's `rateLimit` JSON; `none` → null."""
    if text.strip().lower() == "none":
        return None
    m = _LIMIT.match(text)
    if not m:
        raise InvalidRequest("--rate-limit: expected N/WINDOW such as 100/60s or 5000/1h, or none")
    try:
        window = parse_duration(m.group(2) if m.group(2)[-1].isalpha() else m.group(2) + "s")
    except ValueError:
        raise InvalidRequest("--rate-limit: the window is a duration such as 60s, 1m or 1h") from None
    if window != int(window):
        raise InvalidRequest("--rate-limit: the window is whole seconds")
    body: dict[str, Any] = {"requests": int(m.group(1)), "window": int(window)}
    if burst is not None:
        body["burst"] = burst
    return body


def _update(args: argparse.Namespace, store: Store, config: Config) -> int:
    client = _client(store, args.client_id)
    body: dict[str, Any] = {}
    for option, field in (
        ("name", "name"),
        ("description", "description"),
        ("scope", "scopes"),
        ("audience", "audiences"),
    ):
        if getattr(args, option) is not None:
            body[field] = getattr(args, option)
    if args.token_lifetime is not None:
        body["tokenLifetime"] = args.token_lifetime or None
    if args.rate_limit is not None:
        body["rateLimit"] = rate_limit_body(args.rate_limit, args.burst)
    elif args.burst is not None:
        raise InvalidRequest("--burst: give it with --rate-limit")
    if not body:
        raise CommandError("nothing to change: give at least one option (see --help)")
    return _save(args, store, service.updated_client(client, body, require_name=False))


def _save(args: argparse.Namespace, store: Store, client: Any) -> int:
    store.update_client(client, ACTOR)
    output(args, service.render_client(client), f"updated client {client.client_id}")
    return 0


def _disable(args: argparse.Namespace, store: Store, config: Config) -> int:
    return _save(
        args, store, service.updated_client(_client(store, args.client_id), {"disabled": True}, False)
    )


def _enable(args: argparse.Namespace, store: Store, config: Config) -> int:
    return _save(
        args, store, service.updated_client(_client(store, args.client_id), {"disabled": False}, False)
    )


def _usage(args: argparse.Namespace, store: Store, config: Config) -> int:
    from gateway.admin.usage import hour_floor

    _client(store, args.client_id)
    end = moment_of(args.end, "--to", time.time())
    start = moment_of(args.start, "--from", end - 86400)
    rows = store.usage_of(args.client_id, hour_floor(start), hour_floor(end + 3600))
    data = {
        "usage": [
            {"hour": r.hour, "route": r.route, "allowed": r.allowed, "refused": r.refused} for r in rows
        ]
    }
    lines = [f"{r.hour}  {r.route:<24} allowed {r.allowed:>8}  refused {r.refused:>8}" for r in rows]
    output(args, data, "\n".join(lines) or "no requests in that time (counts are written every few seconds)")
    return 0


# --- secrets and public keys -------------------------------------------------------------------


def secret_commands(sub: Any, command: Command) -> None:
    command(sub, "list", "list a client's secrets (never the secrets themselves)", _secret_list).add_argument(
        "--client", required=True
    )


def _secret_list(args: argparse.Namespace, store: Store, config: Config) -> int:
    _client(store, args.client)
    output_list(
        args,
        "secrets",
        store.list_client_secrets(args.client, with_expired=True),
        service.render_secret,
        lambda s: f"{s.secret_id}  created {s.created_at}  {_lifecycle(s)}",
        "no secrets",
    )
    return 0


def register(commands: Any, group: Callable[[Any, str, str], Any], command: Command) -> None:
    sub = group(commands, "public-keys", "manage public keys a client registered (private_key_jwt)")
    add = command(sub, "add", "register a public key (JWK or PEM file) for a client", _public_key_add)
    add.add_argument("--client", required=True)
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--jwk-file", type=Path, metavar="FILE", help="a public JWK (JSON)")
    source.add_argument("--pem-file", type=Path, metavar="FILE", help="a PEM public key")
    command(sub, "list", "list a client's registered public keys", _public_key_list).add_argument(
        "--client", required=True
    )
    revoke = command(sub, "revoke", "revoke a registered public key", _public_key_revoke)
    revoke.add_argument("--client", required=True)
    revoke.add_argument("key_id")

    audit = command(
        commands, "audit", "the audit log, newest first: who changed what, when (never a secret)", _audit
    )
    audit.add_argument("--limit", type=int, default=50, help="entries to show (1 to 500; default 50)")
    audit.add_argument("--before", type=int, metavar="ID", help="entries older than this id (paging)")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from None


def _public_key_add(args: argparse.Namespace, store: Store, config: Config) -> int:
    body: dict[str, Any]
    if args.jwk_file is not None:
        try:
            body = {"jwk": json.loads(_read(args.jwk_file))}
        except ValueError:
            raise CommandError(f"{args.jwk_file}: not valid JSON") from None
    else:
        body = {"pem": _read(args.pem_file)}
    key = service.new_public_key(args.client, body)
    store.add_public_key(key, ACTOR)
    output(
        args,
        service.render_public_key(key),
        f"registered public key {key.key_id} ({key.alg}) for {args.client}",
    )
    return 0


def _public_key_list(args: argparse.Namespace, store: Store, config: Config) -> int:
    _client(store, args.client)
    output_list(
        args,
        "publicKeys",
        store.list_public_keys(args.client),
        service.render_public_key,
        lambda k: f"{k.key_id}  {k.alg}  created {k.created_at}",
        "no public keys",
    )
    return 0


def _public_key_revoke(args: argparse.Namespace, store: Store, config: Config) -> int:
    store.revoke_public_key(args.client, args.key_id, ACTOR)
    output_done(args, "revoked", args.key_id)
    return 0


def _audit(args: argparse.Namespace, store: Store, config: Config) -> int:
    if not 1 <= args.limit <= 500:
        raise InvalidRequest("--limit: expected 1 to 500")
    entries = store.list_audit(before=args.before, limit=args.limit)
    data = {
        "audit": [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
            }
            for e in entries
        ]
    }
    output(
        args,
        data,
        "\n".join(f"{e.id:>6}  {e.at}  {e.actor:<26} {e.action:<22} {e.target}" for e in entries)
        or "no entries",
    )
    return 0
