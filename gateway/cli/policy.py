"""`gateway policy check` and `gateway policy explain`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.cli.common import CommandError, add_common, config_of, open_initialized_store, output
from gateway.errors import GatewayError


def register(commands: Any) -> None:
    policy = commands.add_parser(
        "policy", help="check and explain route policies", description="Route policies."
    )
    sub = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)

    check = sub.add_parser(
        "check",
        help="validate policy files and folders",
        description="Validate policy files and folders; print every problem with file, route and field; "
        "exit 1 if there is any. Needs no config file (with --config, routes are also checked "
        "against the gateway's own endpoints under public_url's path).",
    )
    add_common(check, config_default="")
    check.add_argument("files", nargs="+", metavar="FILE", help="policy files or folders")
    check.set_defaults(handler=run_check)

    explain = sub.add_parser(
        "explain",
        help="explain the decision for a client and a request",
        description="Show which route a request matches, the resource it needs, and which record and "
        "role allow it for the client, or why nothing does.",
    )
    add_common(explain)
    explain.add_argument("--client", required=True, metavar="CLIENT_ID")
    explain.add_argument("method", metavar="METHOD")
    explain.add_argument("path", metavar="PATH")
    explain.set_defaults(handler=run_explain)


def run_check(args: argparse.Namespace) -> int:
    from gateway.policy import PolicyError, load_policy

    base_path = config_of(args).public_base_path if args.config else ""
    try:
        policy = load_policy([Path(f) for f in args.files], base_path)
    except PolicyError as exc:
        if args.json:
            output(args, {"ok": False, "problems": exc.problems}, "")
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    summary = {
        "ok": True,
        "files": [str(f) for f in policy.files],
        "routes": len(policy.routes),
        "upstreams": len(policy.upstreams),
    }
    output(
        args,
        summary,
        f"ok: {len(policy.routes)} route(s), {len(policy.upstreams)} upstream(s) in {len(policy.files)} file(s)",
    )
    return 0


def run_explain(args: argparse.Namespace) -> int:
    from gateway.identity.directory import Directory
    from gateway.paths import canonicalize
    from gateway.policy import load_policy

    config = config_of(args)
    policy = load_policy(config.policies, config.public_base_path)
    try:
        segments, path = canonicalize(args.path.encode())
    except GatewayError as exc:
        raise CommandError(f"{args.path}: {exc.description} (the gateway answers 400)") from None
    match = policy.table.match(args.method, segments)
    result: dict[str, Any] = {"method": args.method, "path": path, "clientId": args.client}
    lines = [f"{args.method} {path}"]
    if match is None:
        result.update(decision="deny", status=404, reason="no route matches")
        lines.append("  no route matches: 404 not_found")
        output(args, result, "\n".join(lines))
        return 0
    route = match.route
    result["route"] = route.id
    lines.append(f"  route    {route.id} ({route.match} in {route.source})")
    if route.public:
        result.update(decision="allow", status=200, reason="public route (auth: none)")
        lines.append("  decision allow: public route (auth: none)")
        output(args, result, "\n".join(lines))
        return 0
    store = open_initialized_store(config)
    try:
        client = store.get_client(args.client)
        if client is None or client.disabled:
            reason = "the client does not exist" if client is None else "the client is disabled"
            result.update(decision="deny", status=401, reason=reason)
            lines.append(f"  decision deny (401): {reason}")
            output(args, result, "\n".join(lines))
            return 0
        missing = [s for s in route.scopes if s not in client.scopes]
        if missing or (route.audience is not None and route.audience not in client.audiences):
            reason = f"missing scope {missing[0]}" if missing else f"not allowed audience {route.audience}"
            result.update(decision="deny", status=403, reason=reason + " (with an access key or client JWT)")
            lines.append(f"  decision deny (403 insufficient_scope): {reason}")
            output(args, result, "\n".join(lines))
            return 0
        if route.permission is None or route.resource is None:
            result.update(
                decision="allow", status=200, reason="route needs only an authenticated caller or scopes"
            )
            lines.append("  decision allow: the route needs no permission")
            output(args, result, "\n".join(lines))
            return 0
        resource = route.resource.fill(match.params)
        result.update(permission=route.permission, resource=resource)
        lines.append(f"  needs    {route.permission} on {resource}")
        grants = Directory(store).load_grants(client.client_id)
        grant = grants.find(route.permission, resource)
        if grant is None:
            result.update(
                decision="deny",
                status=403,
                reason="no grant gives the permission on the resource",
                grants=[
                    {"recordId": g.record_id, "roleId": g.role_id, "action": g.action, "resource": g.resource}
                    for g in grants.grants
                ],
            )
            lines.append("  decision deny (403 access_denied): no grant gives it")
            for g in grants.grants:
                lines.append(f"    has {g.action} on {g.resource} (record {g.record_id}, role {g.role_id})")
            if not grants.grants:
                lines.append("    the client has no grants")
        else:
            result.update(
                decision="allow",
                status=200,
                recordId=grant.record_id,
                roleId=grant.role_id,
                grant={"action": grant.action, "resource": grant.resource},
            )
            lines.append(
                f"  decision allow: record {grant.record_id}, role {grant.role_id} ({grant.action} on {grant.resource})"
            )
        output(args, result, "\n".join(lines))
        return 0
    finally:
        store.close()
