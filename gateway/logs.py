"""Log hygiene that holds whatever the server (issue 9, defect 12).

uvicorn writes two warnings for every request that asks to upgrade to WebSocket when no
WebSocket library is installed ("Unsupported upgrade request.", "No supported WebSocket library
detected..."). The gateway does not proxy WebSockets on purpose and answers such a request as
plain HTTP (a 401 without a credential), so the warnings say nothing an operator can act on, and
any caller could fill the log with them. They are dropped.
"""

from __future__ import annotations

import logging

_NOISE = ("Unsupported upgrade request", "No supported WebSocket library detected")


class _DropUpgradeNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not message.startswith(_NOISE)


def quiet_server_noise() -> None:
    """Install the filters (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropUpgradeNoise) for f in logger.filters):
        logger.addFilter(_DropUpgradeNoise())
