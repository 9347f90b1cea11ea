"""What one worker process holds while it serves: config, the current policy, upstream clients,
and the identity services (store, directory, authenticators, grants, signing keys). Both
listeners' apps read from the same Runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from gateway import group, metrics
from gateway.background import every
from gateway.config import Config
from gateway.crypto import load_sealer
from gateway.errors import ConfigError, GatewayError
from gateway.identity.directory import Directory
from gateway.identity.external import ExternalTokenVerifier
from gateway.identity.jwks import JwksFetcher
from gateway.identity.rotation import Rotation
from gateway.identity.signing import IdentityHeaders, KeyRing, RingHolder
from gateway.identity.tokens import TokenService
from gateway.identity.trusted import check_not_own_issuer, identity_from
from gateway.metrics_history import TrafficHistory
from gateway.models import TrustedIdentity
from gateway.pipeline.authn import AuthenticatorChain
from gateway.pipeline.authn.access_key import AccessKeyAuthenticator
from gateway.pipeline.authn.client_auth import ClientAuthenticator
from gateway.pipeline.authn.client_jwt import ClientJwtAuthenticator
from gateway.pipeline.authn.gateway_jwt import GatewayJwtAuthenticator
from gateway.pipeline.authn.oidc import OidcAuthenticator
from gateway.pipeline.authz import Authorizer
from gateway.pipeline.authz.grants import DirectoryGrants
from gateway.pipeline.decide import Remembered
from gateway.pipeline.forward.upstream import UpstreamClients
from gateway.pipeline.mutate import Mutator
from gateway.pipeline.ratelimit import RateLimiter, open_limiter
from gateway.pipeline.ratelimit.redis import RedisBackend
from gateway.policy.loader import Policy
from gateway.policy.reloader import PolicyHolder
from gateway.quota import RateLimit
from gateway.store import Store, StoreError, open_store
from gateway.usage import UsageRecorder
from gateway.vault.login import Login
from gateway.vault.service import Vault

log = logging.getLogger("gateway")


@dataclass
class IdentityServices:
    """The identity services of a worker (not to be confused with `models.Identity`, who one
    request comes from)."""

    store: Store
    directory: Directory
    chain: AuthenticatorChain
    grants: DirectoryGrants
    holder: RingHolder
    headers: IdentityHeaders
    tokens: TokenService
    client_jwt: ClientJwtAuthenticator
    client_auth: ClientAuthenticator
    rotation: Rotation
    jwks: JwksFetcher
    oidc: OidcAuthenticator
    verifier: ExternalTokenVerifier
    configured_identities: tuple[TrustedIdentity, ...]
    vault: Vault
    login: Login


def check_store(config: Config) -> Store:
    """Open (and migrate) the store; refuse one that `gateway init` never initialised or that
    belongs to another account. Raises ConfigError with what to do."""
    if config.store.path is not None and not config.store.path.exists():
        raise ConfigError(
            f"store: {config.store.path} does not exist: run `gateway init --config {config.source}` first"
        )
    try:
        store = open_store(config.store)
    except StoreError as exc:
        raise ConfigError(f"store: {exc}") from None
    try:
        if store.get_meta("initialized") is None:
            raise ConfigError(
                f"store: {config.store.path or 'the PostgreSQL database'} was never initialised: "
                f"run `gateway init --config {config.source}` first"
            )
        account = store.get_meta("account_id")
        if account != config.account_id:
            raise ConfigError(
                f"account_id: the store belongs to account {account!r}, not {config.account_id!r}"
            )
    except BaseException:
        store.close()
        raise
    return store


def configured_identities(config: Config) -> tuple[TrustedIdentity, ...]:
    """The config file's `identities:`, validated as the admin API validates entries; raises
    ConfigError naming every bad field as `FILE: identities[N].FIELD: why`."""
    problems: list[str] = []
    entries: dict[str, TrustedIdentity] = {}
    for i, item in enumerate(config.identities):
        try:
            entry = identity_from(item, source="config")
            check_not_own_issuer(entry.issuer, (config.public_url, config.admin_public_url))
        except GatewayError as exc:
            field, _, why = exc.description.partition(": ")
            problems.append(f"{config.source}: identities[{i}].{field}: {why}")
            continue
        if entry.identity_id in entries:
            problems.append(
                f"{config.source}: identities[{i}].identityId: {entry.identity_id} is given twice"
            )
        entries[entry.identity_id] = entry
    if problems:
        raise ConfigError("\n".join(problems))
    return tuple(entries.values())


def open_identity(config: Config) -> IdentityServices:
    store = check_store(config)
    try:
        sealer = load_sealer(config.master_key_file, config.previous_master_keys)
        try:
            holder = RingHolder(KeyRing(store.signing_keys(), sealer))
        except Exception as exc:
            # Name where the key came from: GATEWAY_MASTER_KEY wins over the file when set.
            source = "GATEWAY_MASTER_KEY" if os.environ.get("GATEWAY_MASTER_KEY") else "master_key_file"
            raise ConfigError(
                f"{source}: this master key does not open the store's signing keys (a different key "
                f"than the one `gateway init` used?): {exc}"
            ) from None
    except BaseException:
        store.close()
        raise
    try:
        configured = configured_identities(config)
    except ConfigError:
        store.close()
        raise
    directory = Directory(store, configured_identities=configured)
    jwks = JwksFetcher(config.jwks)
    directory.on_trusted_change.append(
        lambda index: jwks.configure({issuer: index.jwks_uri(issuer) for issuer in index.issuers})
    )
    verifier = ExternalTokenVerifier(jwks, config.tokens.leeway)
    oidc = OidcAuthenticator(directory, verifier)
    tokens = TokenService(holder, config)
    access_keys = AccessKeyAuthenticator(directory, config.account_id)
    client_jwt = ClientJwtAuthenticator(
        directory,
        config.account_id,
        bases=(config.public_url, config.admin_public_url),
        audiences=(config.public_url,),
        max_lifetime=config.tokens.max_lifetime,
        leeway=config.tokens.leeway,
    )
    rotation = Rotation(store, sealer, holder, config)
    directory.on_signing_change.append(rotation.reload)
    vault = Vault(store, sealer, config.vault.connections, config.vault.provider_timeout)
    for kind in ("vault", "connection"):
        directory.on_change.setdefault(kind, []).append(vault.on_change)
    directory.on_clear.append(vault.on_change)
    return IdentityServices(
        store=store,
        directory=directory,
        chain=AuthenticatorChain(
            (access_keys, client_jwt, GatewayJwtAuthenticator(directory, tokens), oidc),
            generations=directory,
            cache_size=config.caches.credentials,
            cache_ttl=config.caches.credential_ttl,
        ),
        grants=DirectoryGrants(directory),
        holder=holder,
        headers=IdentityHeaders(holder, config.public_url),
        tokens=tokens,
        client_jwt=client_jwt,
        client_auth=ClientAuthenticator(config, directory, access_keys),
        rotation=rotation,
        jwks=jwks,
        oidc=oidc,
        verifier=verifier,
        configured_identities=configured,
        vault=vault,
        login=Login(vault, config.public_url),
    )


def _limiter(config: Config, directory: Directory) -> RateLimiter:
    async def client_limit(client_id: str) -> RateLimit | None:
        client = await directory.client(client_id)  # cached; a change reaches it within 1 s
        return None if client is None else client.rate_limit

    settings = config.rate_limits
    return open_limiter(
        settings.backend,
        settings.failure_mode,
        settings.key_prefix,
        settings.timeout,
        client_limit,
        config.workers,
    )


class Runtime:
    def __init__(self, config: Config, identity: IdentityServices, policy: Policy | None = None) -> None:
        self.config = config
        self.identity = identity
        self.upstreams = UpstreamClients()
        self.policy = PolicyHolder(
            config.policies, config.public_base_path, on_swap=self._swapped, initial=policy
        )
        self.authn = identity.chain
        self.authz = Authorizer(identity.grants)
        self.mutate = Mutator(identity.headers)
        # Sized as the verified-credential cache: `caches.credentials: 0` verifies every request.
        self.usage = UsageRecorder(identity.store, config.usage.flush_interval)
        self.remembered = Remembered(
            identity.directory,
            self.mutate,
            self.usage,
            config.caches.credentials,
            config.caches.credential_ttl,
        )
        self.traffic = TrafficHistory()  # the console's "last hour" figures
        self.limits = _limiter(config, identity.directory)
        self.ready = False
        # Whether this worker is ready, as /readyz judges it (the admin app sets the full check);
        # beaten into the group's table so any worker's /readyz speaks for all (issue 9, defect 9).
        self.ready_check: Callable[[], bool] = lambda: self.ready
        self.workers: group.Workers | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _beat(self) -> None:
        if self.workers is not None:
            self.workers.beat(self.ready_check())

    async def _heartbeat(self) -> None:
        async def step() -> None:
            self._beat()

        await every(0.5, step, what="readiness heartbeat", log=log, first_delay=False)

    def _swapped(self, policy: Policy) -> None:
        self.upstreams.retire(set(policy.upstreams.values()))

    async def start(self) -> None:
        """Ready once the policy is loaded (it is, or the constructor raised), the upstream
        clients exist and the identity caches follow the change feed."""
        for upstream in self.policy.current.upstreams.values():
            self.upstreams.pool(upstream)
        if self.config.reload_interval > 0:
            self._tasks.append(asyncio.create_task(self.policy.watch(self.config.reload_interval)))
        await self.identity.directory.start()
        self._tasks.append(asyncio.create_task(self.identity.directory.follow()))
        self._tasks.append(asyncio.create_task(self.identity.rotation.run()))
        self._tasks.append(asyncio.create_task(self.usage.run()))
        self._tasks.append(asyncio.create_task(self.identity.vault.audit_loop()))
        self._tasks.append(asyncio.create_task(self.traffic.run()))
        if isinstance(self.limits.backend, RedisBackend):
            self._tasks.append(asyncio.create_task(self.limits.backend.watch()))
        self.ready = True
        self.workers = group.Workers()
        self._beat()
        self._tasks.append(asyncio.create_task(self._heartbeat()))

    async def stop(self) -> None:
        self.ready = False
        if self.workers is not None:
            self.workers.leave()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.upstreams.close()
        await self.usage.flush()  # the last batch; a failure is logged by flush()
        metrics.flush()  # the last requests' counts, for the other workers' pages
        await self.identity.jwks.close()
        await self.identity.vault.close()
        await self.limits.backend.close()
        self.identity.store.close()
