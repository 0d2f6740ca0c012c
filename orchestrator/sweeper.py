"""Finding runs that nothing is working on any more, and ending them.

Runs every ``SWEEP_INTERVAL`` seconds in each Celery worker process (several
sweepers are harmless: every takeover is a compare-and-set on the run's
claim token, so exactly one of them acts on a run). Two kinds of runs are
stuck:

- **Claimed, never launched**: the launcher died (or lost its lease) between
  claiming the event and handing the chord to the broker, and no redelivery
  came to take it over. Launched by the sweeper once the lease is long gone.
- **Launched, chord lost**: the marker left beside the chord in the broker's
  Redis is gone (Redis lost its data, or the chord outlived
  ``CELERY_RESULT_EXPIRES``). Evidence, not age: a run waiting in a long
  backlog keeps its marker and is left alone. Relaunched with a new token
  (so a surviving copy of the old chord does nothing); after
  ``MAX_RELAUNCHES`` relaunches the run is recorded as failed (and
  dead-lettered if it came from Kafka).

Hence the bound documented in the README: a run ends ``ok``, ``partial`` or
``failed`` within (``MAX_RELAUNCHES`` + 1) × (``CELERY_RESULT_EXPIRES`` +
``SWEEP_INTERVAL`` + grace) of its claim, and within a minute or so of a
Redis restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from orchestrator.chord import ChordLauncher, LaunchMarkers
from orchestrator.engine import fail_run
from orchestrator.models import utcnow
from orchestrator.store import RunStore

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    launched: list[str] = field(default_factory=list)
    relaunched: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def sweep_stuck_runs(
    *,
    store: RunStore,
    launcher: ChordLauncher,
    markers: LaunchMarkers,
    queues: Mapping[str, str],
    lease: timedelta,
    max_relaunches: int,
) -> SweepReport:
    """One sweep (see the module docstring); ``queues`` maps a run's source to its Celery queue.

    A grace of two leases keeps the sweeper away from launches in progress.
    """
    report = SweepReport()
    grace = 2 * lease
    now = utcnow()
    for run in store.unlaunched_runs(lease_expired_before=now - grace):
        token = store.take_over_claim(run.id, lease)
        if token is not None:
            log.warning("run %s event %s: claimed but never launched; launching it", run.id, run.event_id)
            # A launch that fails leaves the run to the next sweep (its marker is absent).
            launcher.launch_stored(run, token, queues[run.source])
            store.mark_launched(run.id, token)
            report.launched.append(run.id)
    for run in store.launched_pending_runs(launched_before=now - grace):
        if markers.present(run.id, run.claim_token):
            continue
        if run.relaunches >= max_relaunches:
            reason = f"chord lost {run.relaunches + 1} times (its marker in the broker is gone)"
            failed = fail_run(
                launcher.pipelines, run.id, reason, attempt=run.attempt, token=run.claim_token, store=store
            )
            if failed is not None:
                log.error("run %s event %s: %s; recorded as failed", run.id, run.event_id, reason)
                report.failed.append(run.id)
            continue
        token = store.take_over_launch(run.id, run.claim_token)
        if token is not None:
            log.warning("run %s event %s: its chord was lost; relaunching", run.id, run.event_id)
            launcher.launch_stored(run, token, queues[run.source])
            report.relaunched.append(run.id)
    return report
