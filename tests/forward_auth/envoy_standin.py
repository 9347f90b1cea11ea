"""A stand-in for Envoy with the `ext_authz` HTTP filter (HTTP service), for testing the Envoy
recipe of docs/forward-auth.md where Envoy cannot be installed (no Debian package, no wheel).

    python -m tests.forward_auth.envoy_standin ENVOY_YAML

It reads the recipe's static config (one listener, one route, the ext_authz filter, STATIC
clusters) and does what Envoy's documentation says that config does, nothing more:

- `headers_with_underscores_action: REJECT_REQUEST`: a request header with `_` in its name → 400;
- the check request: the original method, `path_prefix` + the original path and query, the
  `Host`, `Authorization` and `Content-Length` headers (always included) plus those matching
  `authorization_request.allowed_headers`, no body; `server_uri.timeout`;
- no answer (`failure_mode_allow: false`): 403 to the caller;
- a 200: the response headers matching `authorization_response.allowed_upstream_headers` are set
  on the upstream request (replacing the caller's), those named in
  `x-envoy-auth-headers-to-remove` are removed; then the route's `request_headers_to_remove`;
- anything else: the caller gets that status and body, with the response headers matching
  `allowed_client_headers` (plus Content-Length, WWW-Authenticate and Location, always).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}


def matches(patterns: list[dict[str, Any]], name: str) -> bool:
    for p in patterns:
        fold = p.get("ignore_case", False)
        n = name.lower() if fold else name
        for kind in ("exact", "prefix", "suffix", "contains"):
            if kind in p:
                want = p[kind].lower() if fold else p[kind]
                if (
                    (kind == "exact" and n == want)
                    or (kind == "prefix" and n.startswith(want))
                    or (kind == "suffix" and n.endswith(want))
                    or (kind == "contains" and want in n)
                ):
                    return True
    return False


class Standin:
    def __init__(self, config: dict[str, Any]) -> None:
        resources = config["static_resources"]
        self.clusters = {
            c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
                "socket_address"
            ]
            for c in resources["clusters"]
        }
        listener = resources["listeners"][0]
        self.address = listener["address"]["socket_address"]
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        self.reject_underscores = hcm.get("headers_with_underscores_action") == "REJECT_REQUEST"
        route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
        self.upstream = self.clusters[route["route"]["cluster"]]
        self.remove = [h.lower() for h in route.get("request_headers_to_remove", [])]
        (authz,) = [
            f["typed_config"] for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_authz"
        ]
        assert authz.get("failure_mode_allow", False) is False, "the recipe must fail closed"
        service = authz["http_service"]
        self.authz = self.clusters[service["server_uri"]["cluster"]]
        timeout = str(service["server_uri"].get("timeout", "0.2s"))
        self.timeout = float(timeout.rstrip("s"))
        self.prefix = service.get("path_prefix", "")
        request = service.get("authorization_request", {})
        response = service.get("authorization_response", {})
        self.allowed_headers = request.get("allowed_headers", {}).get("patterns", [])
        self.upstream_headers = response.get("allowed_upstream_headers", {}).get("patterns", [])
        self.client_headers = response.get("allowed_client_headers", {}).get("patterns", [])
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        assert self.session is not None
        raw = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.raw_headers]
        if self.reject_underscores and any("_" in n for n, _ in raw):
            return web.Response(status=400, text="underscores in header names are rejected")
        check = CIMultiDict({"Host": request.host, "Content-Length": "0"})
        for name, value in raw:
            if name.lower() == "authorization" or matches(self.allowed_headers, name):
                check.add(name, value)
        target = f"http://{self.authz['address']}:{self.authz['port_value']}{self.prefix}{request.raw_path}"
        try:
            async with self.session.request(
                request.method,
                URL(target, encoded=True),
                headers=check,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as answer:
                status, headers, body = answer.status, answer.headers.copy(), await answer.read()
        except (TimeoutError, aiohttp.ClientError):
            return web.Response(status=403)
        if status != 200:
            always = {"content-length", "www-authenticate", "location"}
            out = CIMultiDict(
                (k, v) for k, v in headers.items() if k.lower() in always or matches(self.client_headers, k)
            )
            out.popall("Content-Length", None)
            return web.Response(status=status, body=body, headers=out)
        forward: CIMultiDict[str] = CIMultiDict((n, v) for n, v in raw if n.lower() not in HOP_BY_HOP)
        for name in {k for k in headers if matches(self.upstream_headers, k)}:
            forward.popall(name, None)
            for value in headers.getall(name):
                forward.add(name, value)
        for name in headers.get("x-envoy-auth-headers-to-remove", "").split(","):
            if name.strip():
                forward.popall(name.strip(), None)
        for name in self.remove:
            forward.popall(name, None)
        upstream = f"http://{self.upstream['address']}:{self.upstream['port_value']}{request.raw_path}"
        async with self.session.request(
            request.method, URL(upstream, encoded=True), headers=forward, data=await request.read()
        ) as reply:
            out = CIMultiDict((k, v) for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP)
            return web.Response(status=reply.status, body=await reply.read(), headers=out)


async def main(path: str) -> None:
    with open(path) as f:
        standin = Standin(yaml.safe_load(f))
    standin.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
    server = web.Server(standin.handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, standin.address["address"], standin.address["port_value"])
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await standin.session.close()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
