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
    if not policy.routes:
        # Files may split upstreams from routes, but a policy without any route proxies nothing.
        problem = "no routes in " + ", ".join(args.files) + " (a policy needs at least one route)"
        if args.json:
            output(args, {"ok": False, "problems": [problem]}, "")
        print(problem, file=sys.stderr)
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


DENIED = 3


def run_explain(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_explain(args))


async def _explain(args: argparse.Namespace) -> int:
    """The proxy's own stages decide: the route match of `pipeline.decide`, and the Authorizer
    over the same grants engine, for the client as an access key would present it. Only the
    explanation (which grant allowed it, or what the client has) is read beside the decision."""
    from gateway.errors import NotFound
    from gateway.identity.directory import Directory
    from gateway.models import Identity
    from gateway.paths import canonicalize
    from gateway.pipeline.authz import Authorizer
    from gateway.pipeline.authz.grants import DirectoryGrants
    from gateway.pipeline.decide import match_route
    from gateway.policy import load_policy

    config = config_of(args)
    policy = load_policy(config.policies, config.public_base_path)
    try:
        segments, path = canonicalize(args.path.encode())
    except GatewayError as exc:
        raise CommandError(f"{args.path}: {exc.description} (the gateway answers 400)") from None
    result: dict[str, Any] = {"method": args.method, "path": path, "clientId": args.client}
    lines = [f"{args.method} {path}"]

    def decided(decision: str, status: int, reason: str, line: str, **extra: Any) -> int:
        result.update(decision=decision, status=status, reason=reason, **extra)
        lines.append(line)
        output(args, result, "\n".join(lines))
        # A script can test the answer: 0 allowed, 3 denied (1 and 2 are errors, as everywhere).
        return 0 if decision == "allow" else DENIED

    try:
        match = match_route(policy, args.method, segments)
    except NotFound:
        return decided("deny", 404, "no route matches", "  no route matches: 404 not_found")
    route = match.route
    result["route"] = route.id
    lines.append(f"  route    {route.id} ({route.match} in {route.source})")
    if route.public:
        return decided(
            "allow", 200, "public route (auth: none)", "  decision allow: public route (auth: none)"
        )
    store = open_initialized_store(config)
    try:
        directory = Directory(store)
        client = await directory.client(args.client)
        if client is None or client.disabled:
            reason = "the client does not exist" if client is None else "the client is disabled"
            return decided("deny", 401, reason, f"  decision deny (401): {reason}")
        resource = route.resource.fill(match.params) if route.resource is not None else None
        if route.permission is not None and resource is not None:
            result.update(permission=route.permission, resource=resource)
            lines.append(f"  needs    {route.permission} on {resource}")
        try:
            await Authorizer(DirectoryGrants(directory)).authorize(
                route, Identity.of_client(client, "access_key"), match.params
            )
        except GatewayError as exc:
            if route.permission is None or resource is None or exc.error != "access_denied":
                return decided(
                    "deny",
                    exc.status,
                    f"{exc.description} (with an access key or client JWT)",
                    f"  decision deny ({exc.status} {exc.error}): {exc.description}",
                )
            lines.append(f"  decision deny ({exc.status} {exc.error}): {exc.description}")
            grants = (await directory.grant_set(client.client_id)).grants
            for g in grants:
                lines.append(f"    has {g.action} on {g.resource} (record {g.record_id}, role {g.role_id})")
            if not grants:
                lines.append("    the client has no grants")
            result.update(
                decision="deny",
                status=exc.status,
                reason=exc.description,
                grants=[
                    {"recordId": g.record_id, "roleId": g.role_id, "action": g.action, "resource": g.resource}
                    for g in grants
                ],
            )
            output(args, result, "\n".join(lines))
            return DENIED
        if route.permission is None or resource is None:
            return decided(
                "allow",
                200,
                "route needs only an authenticated caller or scopes",
                "  decision allow: the route needs no permission",
            )
        grant = (await directory.grant_set(client.client_id)).find(route.permission, resource)
        assert grant is not None  # the authorizer allowed it from these very grants
        return decided(
            "allow",
            200,
            f"record {grant.record_id}, role {grant.role_id}",
            f"  decision allow: record {grant.record_id}, role {grant.role_id} ({grant.action} on {grant.resource})",
            recordId=grant.record_id,
            roleId=grant.role_id,
            grant={"action": grant.action, "resource": grant.resource},
        )
    finally:
        store.close()
