"""The ``orchestrator`` command line.

Exit codes: 0 success (for ``analyze``: every worker ok), 1 the run ended
partial or failed, 2 bad input or usage, 3 a service was unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from kafka.errors import KafkaError
from marshmallow import ValidationError
from prometheus_client.multiprocess import mark_process_dead

from bridge.redrive import ReplayError, format_summary, read_dead_letters, replay, select_for_replay, summarise
from orchestrator import wiring
from orchestrator.api import create_app
from orchestrator.config import LOG_LEVELS, ConfigError, Settings
from orchestrator.domain import JSON, RunRequest, Segment
from orchestrator.errors import BadInput, Verdict, classify
from orchestrator.logs import configure_logging
from orchestrator.metrics import serve_process_metrics
from orchestrator.migrate import upgrade_database
from orchestrator.models import DeadLetterOutbox
from orchestrator.pipelines import Pipelines
from orchestrator.pipelines.tutor import CEFR_LEVELS
from orchestrator.pipelines.tutor import NAME as TUTOR
from orchestrator.runs import (
    ClaimInProgress,
    RunTimeout,
    relaunch_stuck_runs,
    run_metadata,
    submit_analysis_waiting,
    wait_for_bundle,
)
from orchestrator.schemas import idempotency_key_error
from orchestrator.services import Services
from orchestrator.tracing import start_tracing

EXIT_OK, EXIT_NOT_OK, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3

_SPEAKER_LINE = re.compile(r"^\s*([A-Z][\w .'-]{0,40}?):\s+(.+)$")


class UsageError(BadInput):
    """A command-line argument or an input file is unusable."""


#: How each command's process is named in traces (unless OTEL_SERVICE_NAME names it).
SERVICE_NAMES = {"serve": "orchestrator-api", "bridge": "orchestrator-bridge"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"orchestrator: configuration error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_logging(args.log_level or settings.log_level)
    start_tracing(settings, SERVICE_NAMES.get(args.command, "orchestrator-cli"))
    try:
        result: int = args.handler(args, settings)
    except Exception as exc:
        return exit_code_for(exc, args.prog)
    return result


def exit_code_for(exc: Exception, prog: str) -> int:
    """Report a command's failure on stderr and map it to the exit code (the one place that does).

    Bad input → 2, a service unreachable → 3, a run that did not finish → 1;
    anything else is a bug and raises with its traceback.
    """
    if isinstance(exc, RunTimeout | ClaimInProgress):
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    verdict = classify(exc)
    if verdict is Verdict.BAD_INPUT:
        detail = f"invalid request: {json.dumps(exc.messages)}" if isinstance(exc, ValidationError) else str(exc)
        print(f"{prog}: {detail}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if verdict is Verdict.INFRASTRUCTURE:
        print(f"{prog}: a service is unreachable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    raise exc


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
    analyze.set_defaults(prog=analyze.prog, handler=run_analyze)

    tutor = commands.add_parser(
        "tutor",
        help="answer a learner's sentence as the tutor would",
        description="Run the tutor pipeline on TEXT (grammar, fluency, vocabulary, feedback) and print the "
        "tutor's response, then one status line per worker. Turns of one --session build its history, which "
        "changes the teaching strategy. Without CELERY_BROKER_URL it runs in-process on SQLite with the builtin "
        "analysers (their first use in a process takes a few seconds).",
    )
    tutor.add_argument("text", help="the learner's sentence")
    tutor.add_argument("--level", type=str.upper, choices=CEFR_LEVELS, help="the learner's CEFR level (default B1)")
    tutor.add_argument("--session", help="session id (default: a new session)")
    tutor.add_argument("--vietnamese", action="store_true", help="explanations and the reply in Vietnamese")
    tutor.add_argument("--event-id", help="idempotency key (default: a new id, so every call runs)")
    tutor.add_argument("--quiet", action="store_true", help="print only the reply and the status lines")
    tutor.set_defaults(prog=tutor.prog, handler=run_tutor)

    serve = commands.add_parser("serve", help="run the HTTP API (gunicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    serve.add_argument("--threads", type=int, default=32, help="threads per process (default 32)")
    serve.set_defaults(prog=serve.prog, handler=run_serve)

    bridge = commands.add_parser(
        "bridge",
        help="consume Kafka analysis tasks and launch their chords",
        description="Consume KAFKA_TASKS_TOPIC as consumer group KAFKA_GROUP_ID, launch a chord per new event "
        "(duplicates are skipped), dead-letter undecodable or invalid messages to KAFKA_DLQ_TOPIC, and commit "
        "offsets only once handed off. Topics are created when missing. SIGTERM/SIGINT: finish handing off what "
        "was fetched, commit, exit 0.",
    )
    bridge.add_argument("--max-in-flight", type=int, help="override BRIDGE_MAX_IN_FLIGHT")
    bridge.set_defaults(prog=bridge.prog, handler=run_bridge)

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
    dlq_list.set_defaults(prog=dlq_list.prog, handler=run_dlq_list)
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
    dlq_replay.set_defaults(prog=dlq_replay.prog, handler=run_dlq_replay)

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
    relaunch.set_defaults(prog=relaunch.prog, handler=run_runs_relaunch)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(prog=upgrade.prog, handler=run_db_upgrade)
    return parser


def run_analyze(args: argparse.Namespace, settings: Settings) -> int:
    services = wiring.build_services(settings)
    analysis = read_request(args.file, services.pipelines, args.context_id, args.language)
    if args.event_id is not None:
        problem = idempotency_key_error(args.event_id, services.pipelines.limits)
        if problem:
            raise UsageError(f"--event-id: {problem}")
        analysis = replace(analysis, event_id=args.event_id)
    bundle = analyse_once(analysis, settings, services)
    if not args.quiet:
        print(json.dumps(bundle, indent=2, ensure_ascii=False))
    for worker in services.pipelines[analysis.pipeline].worker_names:
        status = bundle["worker_statuses"].get(worker, "missing")
        error = bundle["errors"].get(worker)
        print(f"{worker:<22} {status}" + (f"  ({error})" if error else ""))
    print(f"run {bundle['run_id']} event {bundle['event_id']}: {bundle['status']}")
    return EXIT_OK if bundle["status"] == "ok" else EXIT_NOT_OK


def run_tutor(args: argparse.Namespace, settings: Settings) -> int:
    services = wiring.build_services(settings)
    profile = {"level": args.level, "explanation_language": "vi" if args.vietnamese else "en"}
    body = {
        "pipeline": TUTOR,
        "text": args.text,
        "session_id": args.session or f"cli-{uuid.uuid4().hex[:12]}",
        "learner_profile": profile,
    }
    if args.event_id is not None:
        problem = idempotency_key_error(args.event_id, services.pipelines.limits)
        if problem:
            raise UsageError(f"--event-id: {problem}")
    request = replace(services.pipelines.load_request(body), event_id=args.event_id)
    bundle = analyse_once(request, settings, services)
    response = {**bundle, "metadata": run_metadata(services.store, bundle["run_id"])}
    if not args.quiet:
        print(json.dumps(response, indent=2, ensure_ascii=False))
    print(f"tutor: {response['text']}")
    print(f"strategy {response['strategy']}, next action {response['next_action']}")
    for worker in services.pipelines[TUTOR].worker_names:
        status = bundle["worker_statuses"].get(worker, "missing")
        error = bundle["errors"].get(worker)
        print(f"{worker:<22} {status}" + (f"  ({error})" if error else ""))
    print(f"run {bundle['run_id']} event {bundle['event_id']}: {bundle['status']}")
    return EXIT_OK if bundle["status"] == "ok" else EXIT_NOT_OK


def analyse_once(analysis: RunRequest, settings: Settings, services: Services) -> JSON:
    """Run one request to the end with the configured (or embedded) services."""
    if settings.database_url.startswith("sqlite"):
        upgrade_database(settings.database_url)  # the embedded database makes itself
    launcher = wiring.build_celery(settings, services).launcher
    submission = submit_analysis_waiting(
        analysis,
        timeout=settings.analyze_timeout,
        source="cli",
        store=services.store,
        launcher=launcher,
        queue=settings.celery_realtime_queue,
        lease=timedelta(seconds=settings.claim_lease),
    )
    pipeline = services.pipelines[analysis.pipeline]
    return wait_for_bundle(submission, pipeline=pipeline, store=services.store, timeout=settings.analyze_timeout)


def read_request(path: Path, pipelines: Pipelines, context_id: str | None, language: str | None) -> RunRequest:
    """Parse FILE as a JSON request or as a plain-text transcript; raises ``UsageError`` or ``ValidationError``.

    A JSON request with an ``event_id`` is validated as a Kafka event, otherwise as an HTTP body.
    """
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(str(exc)) from exc
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            data: Any = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise UsageError(f"{path} is not valid JSON: {exc}") from None
        return pipelines.load_request(data, event=isinstance(data, dict) and "event_id" in data)
    segments = segments_from_text(text)
    if not segments:
        raise UsageError(f"{path} holds no text")
    payload = {
        "context_id": context_id or (path.stem if str(path) != "-" else "stdin"),
        "language": language,
        "segments": [{k: v for k, v in s.to_json().items() if v is not None} for s in segments],
    }
    return pipelines.load_request(payload)


def segments_from_text(text: str) -> list[Segment]:
    """Segments of a plain-text transcript.

    A line starting with ``Name:`` starts a turn of that speaker (one segment
    per turn, the common transcript format); a blank line ends a paragraph;
    other lines continue the current turn or paragraph.
    """
    turns: list[tuple[str | None, list[str]]] = []
    open_turn = False
    for line in text.splitlines():
        if not line.strip():
            open_turn = False
            continue
        match = _SPEAKER_LINE.match(line)
        if match:
            turns.append((match.group(1), [match.group(2)]))
        elif open_turn:
            turns[-1][1].append(line)
        else:
            turns.append((None, [line]))
        open_turn = True
    return [
        Segment(id=f"p{index}", text=" ".join(" ".join(lines).split()), speaker=speaker)
        for index, (speaker, lines) in enumerate(turns, start=1)
    ]


#: prometheus_client's multiprocess mode: every process counts into files in this directory, and a scrape
#: of any process reads them all.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers > 1 and not os.environ.get(METRICS_DIR_VARIABLE):
        # prometheus_client picks how it keeps values when it is first imported (already done here): start
        # again with the directory set, so that one scrape sees the counts of every gunicorn process.
        os.environ[METRICS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="orchestrator-metrics-")
        os.execv(sys.executable, [sys.executable, "-m", "orchestrator.cli", *sys.argv[1:]])
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
            if os.environ.get(METRICS_DIR_VARIABLE):
                self.cfg.set("child_exit", lambda _server, worker: mark_process_dead(worker.pid))  # type: ignore[no-untyped-call]

        def load(self) -> Any:
            return flask_app

    Server().run()
    return EXIT_OK


def run_bridge(args: argparse.Namespace, settings: Settings) -> int:
    if args.max_in_flight is not None:
        if args.max_in_flight < 1:
            raise UsageError("--max-in-flight must be at least 1")
        settings = replace(settings, bridge_max_in_flight=args.max_in_flight)
    try:
        bridge = wiring.build_bridge(settings)
    except KafkaError as exc:
        print(f"{args.prog}: cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc!r}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: bridge.stopping.set())
    serve_process_metrics(settings.metrics_port)
    bridge.run()
    return EXIT_OK


def run_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        waiting = wiring.build_services(settings).store.outbox_entries()
    except Exception as exc:
        if classify(exc) is not Verdict.INFRASTRUCTURE:
            raise
        # The topic can still be listed; say what is missing.
        print(f"{args.prog}: cannot read the outbox in the database: {exc}", file=sys.stderr)
        waiting = []
    if waiting:
        print(format_outbox(waiting, args.limit), file=sys.stderr if args.json else sys.stdout)
    letters = read_dead_letters(settings.kafka_bootstrap_servers, settings.kafka_dlq_topic)
    summary = summarise(letters, newest=args.limit)
    if args.json:
        summary["not_yet_published"] = len(waiting)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary, args.limit))
    return EXIT_OK


def format_outbox(waiting: Sequence[DeadLetterOutbox], limit: int) -> str:
    """The outbox as text: letters decided but not yet acknowledged by Kafka, oldest first."""
    lines = [f"{len(waiting)} dead letters not yet published (Kafka has not acknowledged them):"]
    for entry in waiting[:limit]:
        error = f"  last error: {entry.last_error[:120]}" if entry.last_error else ""
        lines.append(f"  {entry.created_at.isoformat()}  event {entry.event_id}  run {entry.run_id}  "
                     f"tries {entry.attempts}{error}")  # fmt: skip
    return "\n".join(lines) + "\n"


def run_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    letters = read_dead_letters(settings.kafka_bootstrap_servers, settings.kafka_dlq_topic)
    selected = select_for_replay(letters, stage=args.stage, limit=args.limit)
    if args.dry_run:
        for letter in selected:
            print(f"would replay {letter.event_id or '-'} ({letter.stage}, attempt {letter.attempt + 1})")
    try:
        sent = replay(
            selected,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            tasks_topic=settings.kafka_tasks_topic,
            dry_run=args.dry_run,
            progress=sys.stderr.isatty(),
        )
    except ReplayError as exc:
        print(f"{args.prog}: {exc!r}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {sent} of {len(letters)} dead letters to {settings.kafka_tasks_topic}")
    return EXIT_OK


def run_runs_relaunch(args: argparse.Namespace, settings: Settings) -> int:
    seconds = args.older_than if args.older_than is not None else 2 * settings.celery_visibility_timeout
    if seconds <= 0:
        raise UsageError("--older-than must be positive")
    services = wiring.build_services(settings)
    celery_app = wiring.build_celery(settings, services)
    runs = relaunch_stuck_runs(
        store=services.store,
        launcher=celery_app.launcher,
        older_than=timedelta(seconds=seconds),
        queues=celery_app.queues_by_source,
        dry_run=args.dry_run,
    )
    for run in runs:
        print(f"{'would relaunch' if args.dry_run else 'relaunched'} run {run.id} event {run.event_id}")
    print(f"{len(runs)} stuck runs (pending over {seconds:g} s after launch)")
    return EXIT_OK


def run_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    upgrade_database(settings.database_url, args.revision)
    print(f"database at {args.revision}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
