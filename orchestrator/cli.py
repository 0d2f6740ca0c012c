"""The ``orchestrator`` command line.

Exit codes: 0 success (for ``analyze``: every worker ok), 1 the run ended
partial or failed, 2 bad input or usage, 3 a service was unreachable.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from orchestrator.config import ConfigError, Settings
from orchestrator.domain import JSON, WORKERS, AnalysisRequest, Segment
from orchestrator.logs import configure_logging
from orchestrator.schemas import AnalysisTaskSchema, AnalyzeRequestSchema, Limits

EXIT_OK, EXIT_NOT_OK, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3

_SPEAKER_LINE = re.compile(r"^\s*([A-Z][\w .'-]{0,40}?):\s+(.+)$")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"orchestrator: configuration error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_logging(args.log_level or settings.log_level)
    result: int = args.handler(args, settings)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Analyse transcripts with LLMs along four axes (summary, argument, "
        "implication_sentiment, logic_bias) through a Celery chord; store runs in the database. "
        "Configuration comes from the environment (see README).",
    )
    parser.add_argument("--log-level", help="override LOG_LEVEL (DEBUG, INFO, WARNING)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze = commands.add_parser(
        "analyze",
        help="analyse one file and print the bundle",
        description="Analyse FILE and print the AnalysisBundleResponse, then one status line per worker. "
        "FILE is a JSON request ({context_id, segments, language?, prompt_ids?, event_id?}) or plain "
        "text: one segment per paragraph, 'Name: text' lines give the speaker. Without "
        "CELERY_BROKER_URL the chord runs in-process on SQLite with the builtin model.",
    )
    analyze.add_argument("file", type=Path, help="a .json request or a text file ('-' for standard input)")
    analyze.add_argument("--context-id", help="context id for plain text (default: the file name)")
    analyze.add_argument("--event-id", help="idempotency key (default: a new id, so every call runs)")
    analyze.add_argument("--language", help="language tag for plain text, e.g. en")
    analyze.add_argument("--quiet", action="store_true", help="print only the status lines, not the bundle")
    analyze.set_defaults(handler=run_analyze)

    serve = commands.add_parser("serve", help="run the HTTP API (gunicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    serve.add_argument("--threads", type=int, default=32, help="threads per process (default 32)")
    serve.set_defaults(handler=run_serve)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=run_db_upgrade)
    return parser


def run_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from orchestrator.runs import UnknownContext

    try:
        analysis = read_request(args.file, settings, args.context_id, args.language)
    except (OSError, ValueError) as exc:
        print(f"orchestrator analyze: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        print(f"orchestrator analyze: invalid request: {json.dumps(exc.messages)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.event_id:
        analysis = replace(analysis, event_id=args.event_id)
    try:
        bundle = analyse_once(analysis, settings)
    except UnknownContext as exc:
        print(f"orchestrator analyze: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.quiet:
        print(json.dumps(bundle, indent=2, ensure_ascii=False))
    for worker in WORKERS:
        status = bundle["worker_statuses"].get(worker, "missing")
        error = bundle["errors"].get(worker)
        print(f"{worker:<22} {status}" + (f"  ({error})" if error else ""))
    print(f"run {bundle['run_id']} event {bundle['event_id']}: {bundle['status']}")
    return EXIT_OK if bundle["status"] == "ok" else EXIT_NOT_OK


def analyse_once(analysis: AnalysisRequest, settings: Settings) -> JSON:
    """Run one analysis to the end with the configured (or embedded) services."""
    from orchestrator.migrate import upgrade_database
    from orchestrator.runs import submit_analysis, wait_for_bundle
    from orchestrator.services import build_services
    from tasks.celery_app import create_celery

    if settings.database_url.startswith("sqlite"):
        upgrade_database(settings.database_url)  # the embedded database makes itself
    services = build_services(settings)
    celery_app = create_celery(settings, services)
    submission = submit_analysis(
        analysis, source="cli", store=services.store, celery_app=celery_app, queue=settings.celery_realtime_queue
    )
    return wait_for_bundle(submission, store=services.store, timeout=settings.analyze_timeout)


def read_request(path: Path, settings: Settings, context_id: str | None, language: str | None) -> AnalysisRequest:
    """Parse FILE as a JSON request or as plain text; raises ValidationError/ValueError."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    limits = Limits.from_settings(settings)
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "event_id" in data:
            request: AnalysisRequest = AnalysisTaskSchema(limits=limits).load(data)
        else:
            request = AnalyzeRequestSchema(limits=limits).load(data)
        return request
    segments = segments_from_text(text)
    if not segments:
        raise ValueError(f"{path} holds no text")
    payload = {
        "context_id": context_id or (path.stem if str(path) != "-" else "stdin"),
        "language": language,
        "segments": [{k: v for k, v in s.to_json().items() if v is not None} for s in segments],
    }
    loaded: AnalysisRequest = AnalyzeRequestSchema(limits=limits).load(payload)
    return loaded


def segments_from_text(text: str) -> list[Segment]:
    """One segment per paragraph; a leading 'Name:' becomes the speaker."""
    segments: list[Segment] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        match = _SPEAKER_LINE.match(paragraph)
        speaker, body = (match.group(1), match.group(2)) if match else (None, paragraph)
        segments.append(Segment(id=f"p{len(segments) + 1}", text=body, speaker=speaker))
    return segments


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from gunicorn.app.base import BaseApplication

    from orchestrator.api import create_app

    flask_app = create_app(settings)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            # A realtime request may wait for its chord up to ANALYZE_TIMEOUT.
            self.cfg.set("timeout", int(settings.analyze_timeout) + 30)
            self.cfg.set("accesslog", "-")

        def load(self) -> Any:
            return flask_app

    Server().run()
    return EXIT_OK


def run_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import OperationalError

    from orchestrator.migrate import upgrade_database

    try:
        upgrade_database(settings.database_url, args.revision)
    except OperationalError as exc:
        print(f"orchestrator db upgrade: cannot reach the database: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"database at {args.revision}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
