"""What one worker process holds while it serves: config, the current policy, upstream clients,
the authenticator chain and the authorizer. Both listeners' apps read from the same Runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.config import Config
from gateway.pipeline.authn import Authenticator, AuthenticatorChain
from gateway.pipeline.authz import Authorizer, GrantsEngine
from gateway.pipeline.forward.upstream import UpstreamClients
from gateway.policy.loader import Policy
from gateway.policy.reloader import PolicyHolder

log = logging.getLogger("gateway")


class Runtime:
    def __init__(
        self,
        config: Config,
        authenticators: tuple[Authenticator, ...] = (),
        grants: GrantsEngine | None = None,
    ) -> None:
        self.config = config
        self.upstreams = UpstreamClients()
        self.policy = PolicyHolder(config.policies, config.public_base_path, on_swap=self._swapped)
        self.authn = AuthenticatorChain(authenticators)
        self.authz = Authorizer(grants)
        self.ready = False
        self._tasks: list[asyncio.Task[None]] = []

    def _swapped(self, policy: Policy) -> None:
        self.upstreams.retire(set(policy.upstreams.values()))

    async def start(self) -> None:
        """Ready once the policy is loaded (it is, or the constructor raised) and the upstream
        clients exist."""
        for upstream in self.policy.current.upstreams.values():
            self.upstreams.session(upstream)
        if self.config.reload_interval > 0:
            self._tasks.append(asyncio.create_task(self.policy.watch(self.config.reload_interval)))
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.upstreams.close()
