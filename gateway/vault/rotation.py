"""`gateway keys rotate-master`: every value sealed under the master key (signing keys,
connection secrets, users' refresh and access tokens, login verifiers) re-sealed under the current
one, while the gateway serves.

The gateways must already run with the new key as `master_key_file` and the old one in
`previous_master_keys` (so they read both and seal with the new). Each value is re-sealed in a
transaction of its own and written only if it did not change since it was read (a refresh may
store a rotated token meanwhile, sealed under the current key already), so the command can be
stopped at any point and run again: it picks up what is left. When it reports nothing remaining,
the old key can leave `previous_master_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.crypto import Sealer, SealError
from gateway.store import Store


@dataclass
class RotationReport:
    master_key_id: str
    resealed: dict[str, int] = field(default_factory=dict)
    already_current: int = 0
    changed_meanwhile: int = 0
    unreadable: list[str] = field(default_factory=list)  # "table key": sealed under an unknown key
    remaining: int = 0

    def render(self) -> dict[str, object]:
        return {
            "masterKeyId": self.master_key_id,
            "resealed": self.resealed,
            "alreadyCurrent": self.already_current,
            "changedMeanwhile": self.changed_meanwhile,
            "unreadable": self.unreadable,
            "remaining": self.remaining,
        }


def rotate_master(store: Store, sealer: Sealer, actor: str) -> RotationReport:
    report = RotationReport(sealer.current.kid)
    for table, key, column, sealed, aad in list(store.sealed_rows()):
        if sealer.is_current(sealed):
            report.already_current += 1
            continue
        try:
            fresh = sealer.reseal(sealed, aad)
        except SealError:
            # Named by table and key only: the error says which master key id is missing.
            report.unreadable.append(
                f"{table} {'/'.join(key)} ({column}, key id {Sealer.key_id_of(sealed)[:16]})"
            )
            continue
        if store.replace_sealed(table, key, column, sealed, fresh):
            report.resealed[table] = report.resealed.get(table, 0) + 1
        else:
            report.changed_meanwhile += 1
    report.remaining = sum(1 for row in store.sealed_rows() if not sealer.is_current(row[3]))
    store.audit_rotation(
        actor,
        {
            "masterKeyId": report.master_key_id,
            "resealed": sum(report.resealed.values()),
            "remaining": report.remaining,
        },
    )
    return report
