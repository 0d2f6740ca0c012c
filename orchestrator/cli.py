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

from orchestrator.config import LOG_LEVELS, ConfigError, Settings
from orchestrator.domain import JSON, WORKERS, AnalysisRequest, Segment
from orchestrator.logs import configure_logging
from orchestrator.schemas import AnalysisTaskSchema, AnalyzeRequestSchema, Limits, idempotency_key_error

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
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, help="override LOG_LEVEL (DEBUG, INFO, WARNING, ...)"
    )
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

    bridge = commands.add_parser(
        "bridge",
        help="consume Kafka analysis tasks and launch their chords",
        description="Consume KAFKA_TASKS_TOPIC as consumer group KAFKA_GROUP_ID, launch a chord per new event "
        "(duplicates are skipped), dead-letter undecodable or invalid messages to KAFKA_DLQ_TOPIC, and commit "
        "offsets only once handed off. Topics are created when missing. SIGTERM/SIGINT: finish handing off what "
        "was fetched, commit, exit 0.",
    )
    bridge.add_argument("--max-in-flight", type=int, help="override BRIDGE_MAX_IN_FLIGHT")
    bridge.set_defaults(handler=run_bridge)

    dlq = commands.add_parser("dlq", help="inspect and replay dead letters").add_subparsers(
        dest="dlq_command", required=True, metavar="ACTION"
    )
    dlq_list = dlq.add_parser(
        "list",
        help="summarise the dead-letter topic",
        description="Read KAFKA_DLQ_TOPIC from the beginning (no consumer group: nothing is committed) and print "
        "counts by stage and error type, then the newest dead letters.",
    )
    dlq_list.add_argument("--limit", type=int, default=20, help="newest letters to show (default 20)")
    dlq_list.add_argument("--json", action="store_true", help="print the summary as JSON")
    dlq_list.set_defaults(handler=run_dlq_list)
    dlq_replay = dlq.add_parser(
        "replay",
        help="re-publish dead letters to the tasks topic",
        description="Re-publish the original payload of selected dead letters to KAFKA_TASKS_TOPIC (original key "
        "and headers, x-replay-attempt incremented), oldest first, one per event. A failed run is analysed again "
        "once per attempt number, so replaying the same dead letter twice analyses it once.",
    )
    dlq_replay.add_argument("--stage", choices=["decode", "validation", "processing"], help="only this stage")
    dlq_replay.add_argument("--limit", type=int, help="replay at most N events")
    dlq_replay.add_argument("--dry-run", action="store_true", help="print what would be replayed; send nothing")
    dlq_replay.set_defaults(handler=run_dlq_replay)

    runs = commands.add_parser("runs", help="operate on stored runs").add_subparsers(
        dest="runs_command", required=True, metavar="ACTION"
    )
    relaunch = runs.add_parser(
        "relaunch",
        help="launch again the chords of runs stuck in pending",
        description="Find runs launched longer than --older-than seconds ago and still pending (their chord was "
        "lost, e.g. Redis lost its data) and launch their chords again. Workers that already succeeded reuse "
        "their stored output. Safe to run from cron: each stuck run is relaunched by one caller.",
    )
    relaunch.add_argument(
        "--older-than",
        type=float,
        help="seconds pending after launch (default: twice CELERY_VISIBILITY_TIMEOUT)",
    )
    relaunch.add_argument("--dry-run", action="store_true", help="list the stuck runs; launch nothing")
    relaunch.set_defaults(handler=run_runs_relaunch)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=run_db_upgrade)
    return parser


def run_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from kombu.exceptions import OperationalError as KombuOperationalError
    from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError

    from orchestrator.runs import ClaimInProgress, RunTimeout, UnknownContext

    try:
        analysis = read_request(args.file, settings, args.context_id, args.language)
    except (OSError, ValueError) as exc:
        print(f"orchestrator analyze: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        print(f"orchestrator analyze: invalid request: {json.dumps(exc.messages)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.event_id is not None:
        problem = idempotency_key_error(args.event_id, Limits.from_settings(settings))
        if problem:
            print(f"orchestrator analyze: --event-id: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
        analysis = replace(analysis, event_id=args.event_id)
    try:
        bundle = analyse_once(analysis, settings)
    except UnknownContext as exc:
        print(f"orchestrator analyze: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RunTimeout, ClaimInProgress) as exc:
        print(f"orchestrator analyze: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    except (SQLAlchemyOperationalError, KombuOperationalError) as exc:
        print(f"orchestrator analyze: a service is unreachable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
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
    from orchestrator.runs import submit_analysis_waiting, wait_for_bundle
    from orchestrator.services import build_services
    from tasks.celery_app import create_celery

    if settings.database_url.startswith("sqlite"):
        upgrade_database(settings.database_url)  # the embedded database makes itself
    services = build_services(settings)
    celery_app = create_celery(settings, services)
    submission = submit_analysis_waiting(
        analysis,
        timeout=settings.analyze_timeout,
        source="cli",
        store=services.store,
        celery_app=celery_app,
        queue=settings.celery_realtime_queue,
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


def run_bridge(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from kafka.errors import KafkaError

    from bridge.consumer import build_bridge
    from orchestrator.metrics import serve_process_metrics

    if args.max_in_flight is not None:
        if args.max_in_flight < 1:
            print("orchestrator bridge: --max-in-flight must be at least 1", file=sys.stderr)
            return EXIT_BAD_INPUT
        settings = replace(settings, bridge_max_in_flight=args.max_in_flight)
    try:
        bridge = build_bridge(settings)
    except KafkaError as exc:
        print(
            f"orchestrator bridge: cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc!r}", file=sys.stderr
        )
        return EXIT_UNAVAILABLE
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: bridge.stopping.set())
    serve_process_metrics(settings.metrics_port)
    bridge.run()
    return EXIT_OK


def run_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    from kafka.errors import KafkaError

    from bridge.redrive import format_summary, read_dead_letters, summarise

    try:
        letters = read_dead_letters(settings.kafka_bootstrap_servers, settings.kafka_dlq_topic)
    except KafkaError as exc:
        print(f"orchestrator dlq list: cannot read {settings.kafka_dlq_topic}: {exc!r}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    summary = summarise(letters, newest=args.limit)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary, args.limit))
    return EXIT_OK


def run_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from kafka.errors import KafkaError

    from bridge.redrive import ReplayError, read_dead_letters, replay, select_for_replay

    try:
        letters = read_dead_letters(settings.kafka_bootstrap_servers, settings.kafka_dlq_topic)
        selected = select_for_replay(letters, stage=args.stage, limit=args.limit)
        if args.dry_run:
            for letter in selected:
                print(f"would replay {letter.event_id or '-'} ({letter.stage}, attempt {letter.attempt + 1})")
        sent = replay(
            selected,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            tasks_topic=settings.kafka_tasks_topic,
            dry_run=args.dry_run,
            progress=sys.stderr.isatty(),
        )
    except (KafkaError, ReplayError) as exc:
        print(f"orchestrator dlq replay: {exc!r}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {sent} of {len(letters)} dead letters to {settings.kafka_tasks_topic}")
    return EXIT_OK


def run_runs_relaunch(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from kombu.exceptions import OperationalError as KombuOperationalError
    from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError

    from orchestrator.runs import relaunch_stuck_runs
    from orchestrator.services import build_services
    from tasks.celery_app import create_celery

    seconds = args.older_than if args.older_than is not None else 2 * settings.celery_visibility_timeout
    if seconds <= 0:
        print("orchestrator runs relaunch: --older-than must be positive", file=sys.stderr)
        return EXIT_BAD_INPUT
    services = build_services(settings)
    batch, realtime = settings.celery_batch_queue, settings.celery_realtime_queue
    try:
        runs = relaunch_stuck_runs(
            store=services.store,
            celery_app=create_celery(settings, services),
            older_than=timedelta(seconds=seconds),
            queues={"kafka": batch, "api": realtime, "cli": realtime},
            dry_run=args.dry_run,
        )
    except (SQLAlchemyOperationalError, KombuOperationalError) as exc:
        print(f"orchestrator runs relaunch: a service is unreachable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    for run in runs:
        print(f"{'would relaunch' if args.dry_run else 'relaunched'} run {run.id} event {run.event_id}")
    print(f"{len(runs)} stuck runs (pending over {seconds:g} s after launch)")
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
