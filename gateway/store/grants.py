"""Roles and access records: what the grants engine compiles. Every write moves the global grants
generation on every worker (change kind `grants`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gateway.models import Permission, Record, Role, Statement
from gateway.store.backend import Cursor
from gateway.store.base import Conflict, Missing, StoreBase


def _role(row: Any) -> Role:
    return Role(
        role_id=row[0],
        name=row[1],
        description=row[2],
        permissions=tuple(Permission(**p) for p in json.loads(row[3])),
        created_at=row[4],
        updated_at=row[5],
    )


def _statements_json(statements: Iterable[Statement]) -> str:
    return json.dumps([{"roles": list(s.roles), "resources": list(s.resources)} for s in statements])


class GrantsMixin(StoreBase):
    @staticmethod
    def _upsert_role(cur: Cursor, role: Role) -> None:
        permissions = json.dumps(
            [
                {"action": p.action, "allow": p.allow, "grant": p.grant, "delegate": p.delegate}
                for p in role.permissions
            ]
        )
        cur.execute("DELETE FROM roles WHERE role_id = ?", (role.role_id,))
        cur.execute(
            "INSERT INTO roles (role_id, name, description, permissions, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (role.role_id, role.name, role.description, permissions, role.created_at, role.updated_at),
        )

    def put_role(self, role: Role, actor: str, create_only: bool = False) -> Role:
        with self.backend.write() as cur:
            existing = cur.execute(
                "SELECT created_at FROM roles WHERE role_id = ?", (role.role_id,)
            ).fetchone()
            if existing and create_only:
                raise Conflict(f"role {role.role_id} exists already")
            if existing:
                role = Role(
                    role.role_id, role.name, role.permissions, existing[0], role.updated_at, role.description
                )
            self._upsert_role(cur, role)
            self._audit(
                cur,
                actor,
                "role.put",
                f"/gateway/roles/{role.role_id}",
                {"permissions": [p.action for p in role.permissions]},
            )
            self._change(cur, "grants", role.role_id)
        return role

    def get_role(self, role_id: str) -> Role | None:
        with self.backend.read() as cur:
            row = cur.execute(
                "SELECT role_id, name, description, permissions, created_at, updated_at FROM roles WHERE role_id = ?",
                (role_id,),
            ).fetchone()
        return None if row is None else _role(row)

    def get_roles(self, role_ids: Iterable[str]) -> dict[str, Role]:
        ids = sorted(set(role_ids))
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT role_id, name, description, permissions, created_at, updated_at FROM roles"
                f" WHERE role_id IN ({marks})",
                ids,
            ).fetchall()
        return {r[0]: _role(r) for r in rows}

    def list_roles(self, after: str = "", limit: int = 100) -> list[Role]:
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT role_id, name, description, permissions, created_at, updated_at FROM roles"
                " WHERE role_id > ? ORDER BY role_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [_role(r) for r in rows]

    def delete_role(self, role_id: str, actor: str) -> None:
        with self.backend.write() as cur:
            cur.execute("DELETE FROM roles WHERE role_id = ?", (role_id,))
            if cur.rowcount == 0:
                raise Missing(role_id)
            self._audit(cur, actor, "role.delete", f"/gateway/roles/{role_id}")
            self._change(cur, "grants", role_id)

    @staticmethod
    def _upsert_record(cur: Cursor, record: Record) -> None:
        cur.execute("DELETE FROM records WHERE record_id = ?", (record.record_id,))
        cur.execute(
            "INSERT INTO records (record_id, name, description, statements, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.record_id,
                record.name,
                record.description,
                _statements_json(record.statements),
                record.created_by,
                record.created_at,
                record.updated_at,
            ),
        )
        for position, user in enumerate(dict.fromkeys(record.users)):
            cur.execute(
                "INSERT INTO record_users (record_id, user_id, position) VALUES (?, ?, ?)",
                (record.record_id, user, position),
            )

    def put_record(self, record: Record, actor: str, create_only: bool = False) -> Record:
        with self.backend.write() as cur:
            existing = cur.execute(
                "SELECT created_at, created_by FROM records WHERE record_id = ?", (record.record_id,)
            ).fetchone()
            if existing and create_only:
                raise Conflict(f"record {record.record_id} exists already")
            if existing:
                record = Record(
                    record.record_id,
                    record.name,
                    record.users,
                    record.statements,
                    existing[0],
                    record.updated_at,
                    record.description,
                    existing[1],
                )
            self._upsert_record(cur, record)
            self._audit(
                cur,
                actor,
                "record.put",
                f"/gateway/records/{record.record_id}",
                {"users": list(record.users), "statements": json.loads(_statements_json(record.statements))},
            )
            self._change(cur, "grants", record.record_id)
        return record

    def _records(
        self, cur: Cursor, where: str, params: tuple[Any, ...], with_users: bool = True
    ) -> list[Record]:
        rows = cur.execute(
            "SELECT record_id, name, description, statements, created_by, created_at, updated_at FROM records"
            f" WHERE {where}",
            params,
        ).fetchall()
        records = []
        for r in rows:
            users = (
                [
                    u[0]
                    for u in cur.execute(
                        "SELECT user_id FROM record_users WHERE record_id = ? ORDER BY position", (r[0],)
                    ).fetchall()
                ]
                if with_users
                else []
            )
            statements = tuple(Statement(tuple(s["roles"]), tuple(s["resources"])) for s in json.loads(r[3]))
            records.append(Record(r[0], r[1], tuple(users), statements, r[5], r[6], r[2], r[4]))
        return records

    def get_record(self, record_id: str) -> Record | None:
        with self.backend.read() as cur:
            found = self._records(cur, "record_id = ?", (record_id,))
        return found[0] if found else None

    def list_records(self, after: str = "", limit: int = 100) -> list[Record]:
        with self.backend.read() as cur:
            return self._records(cur, "record_id > ? ORDER BY record_id LIMIT ?", (after, limit))

    def records_for_user(self, user_id: str, with_users: bool = True) -> list[Record]:
        """The records that name this user. Grant checks pass `with_users=False`: a record given
        to thousands of clients would otherwise load all of them on every cache miss."""
        with self.backend.read() as cur:
            return self._records(
                cur,
                "record_id IN (SELECT record_id FROM record_users WHERE user_id = ?) ORDER BY record_id",
                (user_id,),
                with_users,
            )

    def delete_record(self, record_id: str, actor: str) -> None:
        with self.backend.write() as cur:
            cur.execute("DELETE FROM record_users WHERE record_id = ?", (record_id,))
            cur.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
            if cur.rowcount == 0:
                raise Missing(record_id)
            self._audit(cur, actor, "record.delete", f"/gateway/records/{record_id}")
            self._change(cur, "grants", record_id)
