"""`gateway identities create|list|show|delete`: trusted external identities (contract §5) from
the command line, straight on the store, as the admin API manages them. Entries from the config
file are listed too, and cannot be changed here (edit the file)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import ACTOR, CommandError, command, group, output, output_done, output_list
from gateway.config import Config
from gateway.identity.trusted import PRESETS, check_not_own_issuer, identity_from, render_identity
from gateway.models import TrustedIdentity
from gateway.store import Store


def configured_identities(config: Config) -> tuple[TrustedIdentity, ...]:
    # gateway.runtime imports prometheus_client, which `serve` must set up first (cli/__init__).
    from gateway.runtime import configured_identities

    return configured_identities(config)


def register(commands: Any) -> None:
    sub = group(commands, "identities", "manage trusted external identities (OIDC federation)")
    create = command(sub, "create", "trust the tokens of an OIDC issuer as a service client", _create)
    create.add_argument("--client", required=True, help="the service client the tokens act as (sc_…)")
    create.add_argument(
        "--preset", choices=sorted(PRESETS), help="defaults for GitHub Actions, GitLab or Kubernetes"
    )
    create.add_argument("--issuer", help="the issuer (iss), compared byte for byte; a preset may give it")
    create.add_argument("--audience", required=True, help="an audience the tokens must carry (aud)")
    create.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="CLAIM=VALUE",
        help="a claim the tokens must carry, exactly or with * matching within one segment between : or / (repeat); "
        "one on sub (or a claim the preset names) is required",
    )
    create.add_argument("--jwks-uri", help="the issuer's JWKS (default: from its discovery document)")
    create.add_argument("--id", help="the entry's id (default: generated tid_…)")
    command(sub, "list", "list trusted identities", _list)
    command(sub, "show", "show one trusted identity", _show).add_argument("identity_id")
    command(sub, "delete", "stop trusting an identity (its exchanged tokens end too)", _delete).add_argument(
        "identity_id"
    )


def _conditions(pairs: list[str]) -> dict[str, str]:
    conditions: dict[str, str] = {}
    for pair in pairs:
        claim, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--condition {pair!r}: expected CLAIM=VALUE")
        conditions[claim] = value
    return conditions


def _create(args: argparse.Namespace, store: Store, config: Config) -> int:
    body = {
        "clientId": args.client,
        "preset": args.preset,
        "issuer": args.issuer,
        "audience": args.audience,
        "conditions": _conditions(args.condition),
        "jwksUri": args.jwks_uri,
        "identityId": args.id,
    }
    entry = identity_from({k: v for k, v in body.items() if v is not None})
    check_not_own_issuer(entry.issuer, (config.public_url, config.admin_public_url))
    if store.get_client(entry.client_id) is None:
        raise CommandError(f"--client: no client {entry.client_id}")
    if any(e.identity_id == entry.identity_id for e in configured_identities(config)):
        raise CommandError(f"identity {entry.identity_id} exists already (in the config file)")
    store.put_trusted_identity(entry, ACTOR)
    output(args, render_identity(entry), f"created identity {entry.identity_id}: {_line(entry)}")
    return 0


def _line(entry: TrustedIdentity) -> str:
    conditions = " ".join(f"{claim}={value}" for claim, value in entry.conditions)
    return f"{entry.issuer} aud={entry.audience} {conditions} → {entry.client_id}"


def _all(store: Store, config: Config) -> list[TrustedIdentity]:
    configured = configured_identities(config)
    ids = {e.identity_id for e in configured}
    stored = [e for e in store.list_trusted_identities() if e.identity_id not in ids]
    return sorted([*configured, *stored], key=lambda e: e.identity_id)


def _list(args: argparse.Namespace, store: Store, config: Config) -> int:
    output_list(
        args,
        "identities",
        _all(store, config),
        render_identity,
        lambda e: f"{e.identity_id}  {_line(e)}{'  (config)' if e.source == 'config' else ''}",
        "no trusted identities",
    )
    return 0


def _show(args: argparse.Namespace, store: Store, config: Config) -> int:
    entry = next((e for e in _all(store, config) if e.identity_id == args.identity_id), None)
    if entry is None:
        raise CommandError(f"not found: {args.identity_id}")
    output(args, render_identity(entry), f"{entry.identity_id}  {_line(entry)}")
    return 0


def _delete(args: argparse.Namespace, store: Store, config: Config) -> int:
    if any(e.identity_id == args.identity_id for e in configured_identities(config)):
        raise CommandError(f"identity {args.identity_id} is defined in the config file; change it there")
    store.delete_trusted_identity(args.identity_id, ACTOR)
    output_done(args, "deleted", args.identity_id, "identity")
    return 0
