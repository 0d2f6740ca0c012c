"""`orchestrator serve` over real HTTP, with the real worker behind it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from orchestrator.config import Settings
from orchestrator.store import RunStore
from tests.factories import analyze_body, unique
from tests.fake_llm import FakeLLM
from tests.http.conftest import serving
from tests.services import Process


@pytest.fixture(scope="module")
def api_url(settings: Settings, celery_worker: Process, log_dir: Path) -> Iterator[str]:
    with serving(settings, log_dir, "serve", "--threads", "16") as (url, _):
        yield url


def test_ten_concurrent_requests_with_one_key_make_one_run_and_one_answer(
    api_url: str, store: RunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.latency_s = 0.3  # keep the first run in flight while the others arrive
    key = unique("key")
    body = analyze_body(40)

    def post(_: int) -> requests.Response:
        return requests.post(f"{api_url}/orchestrator/analyze", json=body, headers={"Idempotency-Key": key}, timeout=30)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(10)))

    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["run_id"] for r in responses} == {responses[0].json()["run_id"]}
    assert {r.json()["status"] for r in responses} == {"ok"}
    run = store.get_run(key)
    assert run is not None and run.id == responses[0].json()["run_id"]
    assert len(store.calls_for(run.id)) == 4
    assert fake_llm.calls_for("summary") == 1


def test_bad_input_over_http_is_json_never_500(api_url: str) -> None:
    not_json = requests.post(
        f"{api_url}/orchestrator/analyze", data=b"{nope", headers={"Content-Type": "application/json"}, timeout=5
    )
    unknown = requests.post(f"{api_url}/orchestrator/analyze", json={"context_id": "c", "x": 1}, timeout=5)
    wrong_method = requests.get(f"{api_url}/orchestrator/analyze", timeout=5)

    assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_json"
    assert unknown.status_code == 422 and "x" in unknown.json()["fields"]
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"


def test_metrics_endpoint_serves_prometheus_text(api_url: str) -> None:
    response = requests.get(f"{api_url}/metrics", timeout=5)

    assert response.status_code == 200
    assert "flask_http_request_duration_seconds" in response.text


def test_with_several_processes_one_scrape_of_metrics_counts_the_requests_of_all(
    settings: Settings, celery_worker: Process, log_dir: Path
) -> None:
    with serving(settings, log_dir, "serve-2", "--workers", "2", "--threads", "4") as (url, server):
        # `serve` started itself again with a directory for the processes' metric files.
        environ = Path(f"/proc/{server.popen.pid}/environ").read_bytes().split(b"\0")
        directory = Path(
            next(v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")).split(b"=", 1)[1].decode()
        )

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: requests.get(f"{url}/openapi.json", timeout=10).status_code, range(60)))
        assert codes == [200] * 60

        counting = {path.stem.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")}
        assert len(counting) >= 2, f"the requests were not spread over the processes: {counting}"
        for _ in range(6):  # whichever process answers the scrape
            scrape = requests.get(f"{url}/metrics", timeout=5).text
            served = sum(
                float(line.rsplit(" ", 1)[1])
                for line in scrape.splitlines()
                if line.startswith("flask_http_request_duration_seconds_count") and 'url_rule="/openapi.json"' in line
            )
            assert served == 60, scrape[:2000]
