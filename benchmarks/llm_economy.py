"""The LLM economy, measured: the response cache, the deadline, and the chain against a real local model.

Starts for real on this machine: PostgreSQL, Redis, Celery workers (threads
pool) and the API under gunicorn, with a fake OpenAI-compatible model; and,
with --local-model, SmolLM2-135M served by llama-cpp-python (`make
llm-install` first). Three parts:

1. A repeat-heavy workload (--requests, half of them repeat an earlier one)
   through a model whose chain ends with the builtin analyser, the response
   cache on: the cache hit rate, the model calls the repeats made, and a
   cached repeat's latency against the same transcripts answered directly by
   the builtin analyser (a second stack without a model). Then every
   transcript again with other prompt versions: answers from the cache
   there would be stale.
2. A deadline of 350 ms with a model that takes 2 s: how many bundles come
   back within 350 ms plus a margin, and what they hold.
3. (--local-model) Analysis runs and tutoring turns answered by the real
   small model, then the builtin analyser: per worker, how often its answer
   fails the schema, how often the repair fixes it, how often the builtin
   level answers, and the latency of each level.

    .venv/bin/python benchmarks/llm_economy.py [--requests 200] [--deadline-requests 60] [--local-model]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis  # noqa: E402
import requests  # noqa: E402
from harness import bench_database, percentile, start_api  # also puts the repository on sys.path
from sqlalchemy import create_engine, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from orchestrator.config import Settings  # noqa: E402
from orchestrator.models import LlmCall  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.factories import make_segments  # noqa: E402
from tests.fake_llm import FakeLLM  # noqa: E402
from tests.services import ROOT, Process, free_port, service_env, start_celery_worker, wait_until  # noqa: E402

#: A Redis database of its own for the response cache, emptied at the start.
CACHE_URL = "redis://127.0.0.1:6379/11"
DEADLINE_MS = 350
SLOW_MODEL_S = 2.0
#: The other prompt version of the analysis pipeline's summary worker (the only one with two).
OTHER_PROMPTS = {"summary": "summary@v2"}
LOCAL_MODEL = "smollm2-135m"
LEARNER_SENTENCES = ["I goes to school yesterday", "She have two cat.", "We was happy when he come to home."]


@dataclass(frozen=True)
class Answer:
    seconds: float
    body: dict[str, Any]


@dataclass
class Stack:
    url: str
    settings: Settings

    def post(self, path: str, bodies: list[dict[str, Any]], concurrency: int = 1) -> list[Answer]:
        """POST each body, ``concurrency`` at a time; each answer (a 200) with its seconds."""
        sessions = [requests.Session() for _ in range(concurrency)]

        def one(index: int) -> Answer:
            started = time.perf_counter()
            response = sessions[index % concurrency].post(f"{self.url}{path}", json=bodies[index], timeout=300)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"unexpected answer {response.status_code}: {response.text[:300]}")
            return Answer(elapsed, response.json())

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, range(len(bodies))))

    def calls(self, run_ids: list[str]) -> list[LlmCall]:
        engine = create_engine(self.settings.database_url)
        try:
            with Session(engine) as session:
                return list(session.scalars(select(LlmCall).where(LlmCall.run_id.in_(run_ids)).order_by(LlmCall.id)))
        finally:
            engine.dispose()


@contextmanager
def running(settings: Settings, log_dir: Path, name: str) -> Iterator[Stack]:
    """A Celery worker and the API for ``settings`` (own queues), until the block ends."""
    suffix = uuid.uuid4().hex[:8]
    settings = replace(settings, celery_realtime_queue=f"realtime-{suffix}", celery_batch_queue=f"analysis-{suffix}")
    env = service_env(**settings_env(settings))
    processes: list[Process] = []
    try:
        processes.append(start_celery_worker(env, log_dir, f"{name}-worker", concurrency=16))
        api, url = start_api(env, log_dir, f"{name}-api")
        processes.append(api)
        yield Stack(url, settings)
    finally:
        for process in processes:
            process.stop()


def ms(seconds: list[float]) -> str:
    values = [s * 1000 for s in seconds]
    return f"p50 {statistics.median(values):6.1f} ms, p95 {percentile(values, 95):6.1f} ms"


def transcript(index: int, seed: int) -> dict[str, Any]:
    """Transcript ``index`` of this run (``seed``): its words differ from every other one's."""
    segments = [
        {**segment, "text": f"{segment['text']} Meeting {seed}-{index}."} for segment in make_segments(8, seed=index)
    ]
    return {"context_id": f"bench-{seed}-{index}", "segments": segments}


def repeat_heavy(base: Settings, log_dir: Path, llm: FakeLLM, total: int) -> None:
    """Part 1: the response cache on a workload where half the requests repeat an earlier one."""
    redis.Redis.from_url(CACHE_URL).flushdb()
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    unique_count = total // 2
    order: list[int] = []
    for index in range(unique_count):
        order.append(index)
        # A repeat of a transcript already asked, at a random later point.
        order.insert(rng.randrange(order.index(index) + 1, len(order) + 1), rng.randrange(index + 1))
    bodies = [transcript(index, seed) for index in order]
    first_seen: set[int] = set()
    is_repeat = []
    for index in order:
        is_repeat.append(index in first_seen)
        first_seen.add(index)

    settings = replace(base, model_adapter_url=llm.url, model_fallback_builtin=True, response_cache_url=CACHE_URL)
    with running(settings, log_dir, "cache") as stack:
        stack.post("/orchestrator/analyze", [transcript(i, seed + 1) for i in range(10)], 4)  # warm-up
        before = len(llm.requests)
        answers = stack.post("/orchestrator/analyze", bodies)
        model_calls = len(llm.requests) - before
        calls = stack.calls([a.body["run_id"] for a in answers])
        cached = sum(1 for call in calls if call.status == "cached")
        answered = sum(1 for call in calls if call.status in ("ok", "cached"))
        repeats = [a for a, repeat in zip(answers, is_repeat, strict=True) if repeat]
        firsts = [a for a, repeat in zip(answers, is_repeat, strict=True) if not repeat]
        repeat_runs = {a.body["run_id"] for a in repeats}
        repeat_model_calls = sum(1 for c in calls if c.run_id in repeat_runs and c.status != "cached")

        before = len(llm.requests)
        other_prompts = [{**transcript(i, seed), "prompt_ids": OTHER_PROMPTS} for i in range(unique_count)]
        changed = stack.post("/orchestrator/analyze", other_prompts)
        changed_calls = [c for c in stack.calls([a.body["run_id"] for a in changed]) if c.worker == "summary"]
        stale = sum(1 for call in changed_calls if call.status == "cached")
        changed_model_calls = sum(1 for r in llm.requests[before:] if r.worker == "summary")

    # The same requests as the repeats, answered by the builtin analyser itself (its answers not cached either).
    with running(replace(base, model_adapter_url=None, response_cache_ttl=0), log_dir, "builtin") as builtin:
        builtin.post("/orchestrator/analyze", [transcript(i, seed + 1) for i in range(10)], 4)  # warm-up
        direct = builtin.post(
            "/orchestrator/analyze", [b for b, repeat in zip(bodies, is_repeat, strict=True) if repeat]
        )

    print(f"\n1. repeat-heavy workload: {total} requests at concurrency 1, {len(repeats)} of them repeats "
          f"(8 segments each), model answering at once, builtin analyser last in the chain")  # fmt: skip
    print(f"   cache hit rate (worker calls answered from the cache): {cached / answered:.1%} "
          f"({cached} of {answered}); model calls {model_calls} for {len(firsts)} first requests x 4")  # fmt: skip
    print(f"   model calls made by the repeats: {repeat_model_calls}")
    print(f"   first request (model)             {ms([a.seconds for a in firsts])}")
    print(f"   cached repeat                     {ms([a.seconds for a in repeats])}")
    print(f"   builtin analyser, no model, same  {ms([a.seconds for a in direct])}")
    added = statistics.median(a.seconds for a in repeats) - statistics.median(a.seconds for a in direct)
    print(f"   a cached repeat's added latency over a direct builtin answer (p50): {added * 1000:+.1f} ms")
    print(f"   after a prompt-version change ({OTHER_PROMPTS['summary']}): {stale} stale answers from the cache "
          f"in {len(changed_calls)} summary calls; the model was asked {changed_model_calls} times")  # fmt: skip


def deadline(base: Settings, log_dir: Path, llm: FakeLLM, total: int) -> None:
    """Part 2: a 350 ms deadline with a model that takes 2 s."""
    settings = replace(base, model_adapter_url=llm.url, model_fallback_builtin=True)
    seed = random.randrange(10**6)
    with running(settings, log_dir, "deadline") as stack:
        stack.post("/orchestrator/analyze", [transcript(i, seed + 1) for i in range(4)], 4)  # warm-up, fast model
        llm.latency_s = SLOW_MODEL_S
        try:
            print(
                f"\n2. deadline {DEADLINE_MS} ms, model taking {SLOW_MODEL_S:.0f} s, builtin analyser last in the chain"
            )
            for concurrency in (1, 4):
                bodies = [{**transcript(i, seed), "deadline_ms": DEADLINE_MS} for i in range(total)]
                answers = stack.post("/orchestrator/analyze", bodies, concurrency)
                seconds = [a.seconds for a in answers]
                statuses = Counter(a.body["status"] for a in answers)
                workers = Counter(s for a in answers for s in a.body["worker_statuses"].values())
                print(f"   concurrency {concurrency}: {ms(seconds)}, max {max(seconds) * 1000:.0f} ms; "
                      f"within {DEADLINE_MS} ms {_share(seconds, 0.350)}, within {DEADLINE_MS} + 50 ms "
                      f"{_share(seconds, 0.400)}, within {DEADLINE_MS} + 100 ms {_share(seconds, 0.450)}")  # fmt: skip
                print(f"     bundles {dict(statuses)}; worker answers {dict(workers)}")
        finally:
            llm.latency_s = 0.0


def _share(seconds: list[float], limit: float) -> str:
    return f"{sum(1 for s in seconds if s <= limit) / len(seconds):.0%}"


def local_model(base: Settings, log_dir: Path, runs: int, response_format: str) -> None:
    """Part 3: the chain against SmolLM2-135M, then the builtin analyser."""
    port = free_port()
    script = [sys.executable, str(ROOT / "scripts" / "local_llm.py"), "--port", str(port), "--n-ctx", "2048"]
    server = Process("local-llm", script, service_env(), log_dir)
    model_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until(lambda: _serves(model_url) or not server.alive(), 60, "the local model server")
        if not server.alive():
            raise SystemExit(f"the local model server exited (is `make llm-install` done?):\n{server.log_tail()}")
        settings = replace(
            base,
            model_adapter_url=model_url,
            model_name=LOCAL_MODEL,
            model_fallback_builtin=True,
            model_max_tokens=256,
            model_max_retries=1,
            model_read_timeout=120,
            model_response_format=response_format,
            celery_visibility_timeout=600,
        )
        with running(settings, log_dir, "local") as stack:
            seed = random.randrange(10**6)
            analysis = stack.post("/orchestrator/analyze", [transcript(i, seed) for i in range(runs)])
            turns = [
                # Far beyond the tutor's default 350 ms: the model is measured, not the deadline.
                {
                    "text": LEARNER_SENTENCES[i % len(LEARNER_SENTENCES)],
                    "session_id": f"bench-{seed}-{i}",
                    "deadline_ms": 600_000,
                }
                for i in range(runs)
            ]
            tutor = stack.post("/api/v1/ai/analyze", turns)
            calls = stack.calls([a.body["run_id"] for a in analysis + tutor])
    finally:
        server.stop()
    print(f"\n3. {LOCAL_MODEL} (llama-cpp-python, MODEL_RESPONSE_FORMAT={response_format}, MODEL_MAX_TOKENS=256), "
          f"then the builtin analyser: {runs} analysis runs and {runs} tutoring turns at concurrency 1")  # fmt: skip
    by_worker: dict[str, list[LlmCall]] = defaultdict(list)
    for call in calls:
        by_worker[f"{call.pipeline}.{call.worker}"].append(call)
    print(f"   {'worker':<36} first answers  invalid  repaired  builtin answered   model p50   builtin p50")
    for worker, worker_calls in sorted(by_worker.items()):
        firsts = [c for c in worker_calls if c.level == 0 and not c.repair]
        invalid = [c for c in firsts if (c.error or "").startswith(("ModelOutputError", "RepairFailed"))]
        repairs = [c for c in worker_calls if c.repair]
        fixed = [c for c in repairs if c.status == "ok"]
        builtin = [c for c in worker_calls if c.level > 0 and c.status == "ok"]
        model_ms = [c.latency_ms for c in worker_calls if c.level == 0 and c.latency_ms is not None]
        builtin_ms = [c.latency_ms for c in builtin if c.latency_ms is not None]
        print(f"   {worker:<36} {len(firsts):>13} {len(invalid):>8} {len(fixed):>5}/{len(repairs):<3} "
              f"{len(builtin):>16}  {_median_s(model_ms):>10}  {_median_s(builtin_ms):>11}")  # fmt: skip
    statuses = Counter(a.body["status"] for a in analysis + tutor)
    seconds = [a.seconds for a in analysis + tutor]
    print(f"   runs {dict(statuses)}; {ms(seconds)} per run")


def _median_s(values: list[float]) -> str:
    return f"{statistics.median(values) / 1000:.2f} s" if values else "-"


def _serves(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/models", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests of the repeat-heavy workload")
    parser.add_argument("--deadline-requests", type=int, default=60, help="requests per concurrency level")
    parser.add_argument("--local-model", action="store_true", help="also measure the chain against SmolLM2-135M")
    parser.add_argument("--local-runs", type=int, default=4, help="analysis runs and tutoring turns each")
    parser.add_argument("--response-format", default="json_object_schema", help="MODEL_RESPONSE_FORMAT of part 3")
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="bench-economy-"))
    base = Settings(
        database_url=bench_database("orchestrator_bench_economy"), celery_broker_url="redis://127.0.0.1:6379/12"
    )
    with FakeLLM() as llm:
        repeat_heavy(base, log_dir, llm, args.requests)
        deadline(replace(base, response_cache_ttl=0), log_dir, llm, args.deadline_requests)
    if args.local_model:
        local_model(replace(base, response_cache_ttl=0), log_dir, args.local_runs, args.response_format)
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    main()
