"""The worker's entry point: ``celery -A tasks worker`` (and ``celery -A tasks flower``) load ``app`` from here."""

from orchestrator.wiring import celery_from_env

app = celery_from_env()
