"""The grants engine behind the Authorizer: decisions from the client's compiled grants, cached
per (client, permission, resource) and dropped when the client's or the grants' generation moves."""

from __future__ import annotations

from gateway.cache import ExpiringCache
from gateway.identity.directory import Directory
from gateway.metrics import DECISION_CACHE, count
from gateway.models import Identity


class DirectoryGrants:
    def __init__(self, directory: Directory, maxsize: int = 200_000) -> None:
        self.directory = directory
        # Decisions stay valid while the generations they were made under do; the TTL only bounds memory.
        self._decisions: ExpiringCache[tuple[str, str, str], tuple[bool, tuple[int, int]]] = ExpiringCache(
            maxsize, 3600
        )
        self._hit = DECISION_CACHE.labels("hit")
        self._miss = DECISION_CACHE.labels("miss")

    async def allowed(self, identity: Identity, permission: str, resource: str) -> bool:
        client_id = identity.client_id
        if client_id is None:
            return False
        key = (client_id, permission, resource)
        generation = self.directory.generation(client_id)
        hit = self._decisions.get(key)
        if hit is not None and hit[1] == generation:
            count(self._hit)
            return hit[0]
        count(self._miss)
        epoch = self.directory.epoch
        grants = await self.directory.grant_set(client_id)
        allowed = grants.find(permission, resource) is not None
        if self.directory.epoch == epoch:
            self._decisions[key] = (allowed, generation)
        return allowed
