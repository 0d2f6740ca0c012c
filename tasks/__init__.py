"""Celery tasks over the core (``orchestrator``). ``celery -A tasks`` finds the app in ``tasks.celery``."""
