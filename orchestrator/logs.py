"""Logging set-up for the service's own entry points."""

from __future__ import annotations

import logging

#: Chatty at INFO; their news matters only when debugging.
_QUIET_BELOW_DEBUG = ("alembic", "celery.app.trace", "kafka")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:
        for name in _QUIET_BELOW_DEBUG:
            logging.getLogger(name).setLevel(logging.WARNING)
