"""Starting and checking the real services the tests run against.

PostgreSQL and Redis are expected on 127.0.0.1 (started by the machine); if
one is down it is started with the machine's own command, or the test run
stops with a message that says what is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import psycopg2
import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''"


class ServiceUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def _postgres_up() -> bool:
    try:
        psycopg2.connect(PG_ADMIN_DSN).close()
    except psycopg2.OperationalError:
        return False
    return True


def _redis_up() -> bool:
    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _ensure(name: str, is_up: Callable[[], bool], start_command: str) -> None:
    if is_up():
        return
    started = subprocess.run(start_command, shell=True, capture_output=True, text=True)
    try:
        wait_until(is_up, 20, name)
    except TimeoutError:
        raise ServiceUnavailable(
            f"{name} is not reachable on 127.0.0.1 and `{start_command}` did not start it "
            f"(exit {started.returncode}): {started.stderr.strip() or started.stdout.strip()}"
        ) from None


def ensure_postgres() -> None:
    if not glob.glob("/etc/postgresql/*") and not _postgres_up():
        raise ServiceUnavailable("PostgreSQL is not running on 127.0.0.1:5432 and is not installed here")
    _ensure("PostgreSQL", _postgres_up, PG_START)


def ensure_redis() -> None:
    _ensure("Redis", _redis_up, REDIS_START)


def recreate_database(name: str, port: int = 5432) -> str:
    """Drop and create database ``name`` (on the server at ``port``); return its SQLAlchemy URL."""
    connection = psycopg2.connect(PG_ADMIN_DSN.replace("port=5432", f"port={port}"))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"


def drop_database(name: str) -> None:
    connection = psycopg2.connect(PG_ADMIN_DSN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


class Process:
    """A child process of the suite, with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the whole process group (pool children too)."""
        if self.alive():
            os.killpg(self.popen.pid, 9)
            self.popen.wait(10)


def service_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "MODEL_", "KAFKA_"))}
    env.pop("DATABASE_URL", None)
    env.update(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_celery_worker(env: Mapping[str, str], log_dir: Path, name: str, concurrency: int = 8) -> Process:
    args = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker",
        "--loglevel=INFO", "-P", "threads", "-c", str(concurrency),
        "--without-gossip", "--without-mingle", "-n", f"{name}@%h",
    ]  # fmt: skip
    return Process(name, args, env, log_dir)


def make_statements_fail(
    database_url: str,
    timing: str,
    *,
    condition: str,
    times: int | None = None,
    table: str = "analysis_runs",
    sqlstate: str = "P0001",
) -> None:
    """Make ``timing`` (e.g. "BEFORE INSERT") statements on ``table`` fail where ``condition`` holds.

    By default the error is a plain database error (``raise_exception``), not
    a lost connection; ``sqlstate`` "57P01" makes it the error of a server
    being shut down. With ``times``, only the first that many fail: a
    sequence counts them, since unlike a table it is not rolled back with the
    failing statement.
    """
    name = f"fail_{uuid.uuid4().hex[:10]}"
    limit = f" AND nextval('{name}') <= {times}" if times is not None else ""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SEQUENCE {name}"))
        connection.execute(
            text(
                f"""
                CREATE FUNCTION {name}() RETURNS trigger AS $$
                BEGIN
                  IF {condition}{limit} THEN
                    RAISE EXCEPTION 'injected failure' USING ERRCODE = '{sqlstate}';
                  END IF;
                  RETURN NEW;
                END $$ LANGUAGE plpgsql
                """
            )
        )
        connection.execute(text(f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"))
    engine.dispose()


class PrivateRedis:
    """A Redis server of a test's own (nothing on disk), to restart or demote without touching the suite's."""

    def __init__(self, log_dir: Path, name: str = "redis-private") -> None:
        self.port = free_port()
        self.url = f"redis://{REDIS_HOST}:{self.port}/0"
        self.log_dir = log_dir
        self.name = name
        self.process = self._start()

    def _start(self) -> Process:
        args = ["redis-server", "--bind", REDIS_HOST, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        process = Process(f"{self.name}-{uuid.uuid4().hex[:6]}", args, service_env(), self.log_dir)
        wait_until(lambda: self._answers() or not process.alive(), 10, f"Redis on port {self.port}")
        return process

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host=REDIS_HOST, port=self.port, socket_timeout=2)

    def restart(self) -> None:
        """SIGKILL and start again: everything it held is lost, as after a crash."""
        self.process.kill()
        self.process.stop()
        self.process = self._start()

    def demote(self) -> None:
        """Make it a replica of a master that does not exist: every write gets READONLY, as in a failover."""
        self.client().execute_command("REPLICAOF", "127.0.0.1", str(free_port()))

    def promote(self) -> None:
        self.client().execute_command("REPLICAOF", "NO", "ONE")

    def stop(self) -> None:
        self.process.kill()
        self.process.stop()


class PrivatePostgres:
    """A PostgreSQL server of a test's own, to stop and start in the middle of a test.

    Runs the machine's own binaries as the ``postgres`` user, in a temporary
    directory; trust authentication on 127.0.0.1.
    """

    def __init__(self, directory: Path) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not binaries:
            raise ServiceUnavailable("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = Path(binaries[-1])
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(directory, "postgres", "postgres")
        self._as_postgres(self.bin / "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self.url = recreate_database("orchestrator", port=self.port)

    def _as_postgres(self, *args: str | Path) -> None:
        command = ["runuser", "-u", "postgres", "--", *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.directory)
        if done.returncode != 0:
            raise ServiceUnavailable(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", self.directory / "log", "-w", "start"
        )

    def stop(self) -> None:
        """A fast shutdown: open sessions are terminated (an administrator command), new ones refused."""
        self._as_postgres(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except ServiceUnavailable:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)
