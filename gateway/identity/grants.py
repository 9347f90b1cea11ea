"""Grants (contract §6): which permissions a client holds on which resources.

A client's access records and their roles compile into a GrantSet once (on a cache miss); a
check is then a walk over a handful of (action pattern, resource pattern) pairs.

- Actions compare case-insensitively; a trailing `*` matches any suffix (`documents:*`, `*`);
  `allow: false` grants nothing.
- A grant on `/users/123` covers `/users/123/documents/9`; a `*` segment matches any one segment.
- `gateway:` permissions (the admin API's own) are never conferred by action `*` or by a grant on
  `/` (or any pattern that does not name `/gateway` literally): an ordinary "allow everything"
  grant for upstream APIs must not make a client an administrator of the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.models import Record, Role


def resource_segments(uri: str) -> tuple[str, ...]:
    return tuple(s for s in uri.strip().split("/") if s)


@dataclass(frozen=True, slots=True)
class Grant:
    record_id: str
    role_id: str
    action: str  # lower-cased pattern
    resource: str  # as written in the record
    segments: tuple[str, ...]
    can_grant: bool

    def confers(self, permission: str, resource: tuple[str, ...]) -> bool:
        gateway = permission.startswith("gateway:")
        if self.action.endswith("*"):
            prefix = self.action[:-1]
            if gateway and not prefix.startswith("gateway:"):
                return False
            if not permission.startswith(prefix):
                return False
        elif self.action != permission:
            return False
        pattern = self.segments
        if gateway and (not pattern or pattern[0] != "gateway"):
            return False
        if len(pattern) > len(resource):
            return False
        return all(p == "*" or p == r for p, r in zip(pattern, resource, strict=False))


@dataclass(frozen=True, slots=True)
class GrantSet:
    grants: tuple[Grant, ...]

    def find(self, permission: str, resource: str, need_grant: bool = False) -> Grant | None:
        """The first grant that gives `permission` on `resource` (with grant rights if asked)."""
        wanted = permission.lower()
        segments = resource_segments(resource)
        for grant in self.grants:
            if (not need_grant or grant.can_grant) and grant.confers(wanted, segments):
                return grant
        return None

    def can_confer_action(self, action: str) -> bool:
        """Whether some grant with grant rights covers this action, on any resource (what it
        takes to write a role that carries the action)."""
        wanted = action.lower()
        for grant in self.grants:
            if not grant.can_grant:
                continue
            if wanted.startswith("gateway:") and (not grant.segments or grant.segments[0] != "gateway"):
                continue
            if grant.action.endswith("*"):
                prefix = grant.action[:-1]
                if wanted.startswith(prefix) and (
                    prefix.startswith("gateway:") or not wanted.startswith("gateway:")
                ):
                    return True
            elif grant.action == wanted:
                return True
        return False


def compile_grants(records: list[Record], roles: dict[str, Role]) -> GrantSet:
    grants: list[Grant] = []
    for record in records:
        for statement in record.statements:
            for role_id in statement.roles:
                role = roles.get(role_id)
                if role is None:
                    continue
                for permission in role.permissions:
                    if not permission.allow:
                        continue
                    for uri in statement.resources:
                        grants.append(
                            Grant(
                                record.record_id,
                                role_id,
                                permission.action.lower(),
                                uri,
                                resource_segments(uri),
                                permission.grant,
                            )
                        )
    return GrantSet(tuple(grants))
