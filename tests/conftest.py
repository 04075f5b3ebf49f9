"""Shared fixtures for the core test suite.

Tests go through the public API only (``plait`` and ``plait.errors``). The fixtures here
record what steps did (calls, events, timestamps) so that tests prove behaviour with
counters and recorded ordering rather than with wall-clock thresholds.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest


@dataclass
class Recorder:
    """A thread-safe log of what steps did during a run.

    ``hit(name)`` counts a call and appends an event; ``mark(label)`` appends an event
    with a monotonic timestamp, so tests compare orderings instead of durations.
    """

    calls: Counter[str] = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hit(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
            self.events.append(name)

    def mark(self, label: str) -> None:
        with self._lock:
            self.events.append(label)
            self.times[label] = time.monotonic()

    def position(self, name: str) -> int:
        return self.events.index(name)


@pytest.fixture
def recorder() -> Recorder:
    """A fresh :class:`Recorder` for one test."""
    return Recorder()


def names(items: Iterable[object]) -> list[str]:
    """Step names of ``p.order`` whether it holds steps or names."""
    return [item if isinstance(item, str) else item.name for item in items]  # type: ignore[attr-defined]


@pytest.fixture
def order_names():
    """``order_names(p)``: the names of ``p.order``, in order."""

    def _order_names(pipeline: object) -> list[str]:
        return names(pipeline.order)  # type: ignore[attr-defined]

    return _order_names


@pytest.fixture
def clean_cwd(tmp_path, monkeypatch):
    """Run the test in an empty temporary directory, with no store configured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAIT_STORE", raising=False)
    return tmp_path


# -- history backends ------------------------------------------------------------------------
# Every history test runs on SQLite, DuckDB and a real PostgreSQL. PostgreSQL comes from
# ``PLAIT_TEST_POSTGRES`` (a ``postgresql://`` URL, exported by ``.ci/run``) or, when that is
# unset, from a throwaway server started once per session with ``.ci/postgres.sh``. Each test
# gets a database of its own, dropped afterwards. No server is a failure, never a skip.

_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts)
    return str(found[-1]) if found else name


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN (a ``postgresql://`` URL) of a PostgreSQL server for the whole session."""
    given = os.environ.get("PLAIT_TEST_POSTGRES")
    if given:
        if not given.startswith(("postgresql://", "postgres://")):
            pytest.fail(
                f"PLAIT_TEST_POSTGRES must be a postgresql:// URL, got {given!r}", pytrace=False
            )
        yield given
        return
    root = Path(tempfile.mkdtemp(prefix="plait-pg-"))
    env = {**os.environ, "PGPORT_FOR_TESTS": str(_free_port())}
    started = subprocess.run(
        [str(_ROOT / ".ci" / "postgres.sh"), str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if started.returncode != 0 or not started.stdout.strip():
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(
            "the history tests need PostgreSQL: set PLAIT_TEST_POSTGRES to a postgresql:// URL "
            f"or install it with .ci/system.sh (exit {started.returncode}):\n{started.stderr}",
            pytrace=False,
        )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(root / "data"), "stop", "-m", "fast"]),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex}"
    try:
        admin = psycopg.connect(server, autocommit=True)
    except psycopg.Error as exc:
        pytest.fail(f"cannot connect to PostgreSQL at {server}: {exc}", pytrace=False)
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield urlsplit(server)._replace(path=f"/{name}").geturl()
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "duckdb", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A history database URL on each backend: SQLite, DuckDB, a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'history.duckdb'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def open_store(tmp_path: Path, history_url: str) -> Iterator[Any]:
    """``open_store(name="store")``: a ``Store`` under ``tmp_path`` recording into
    ``history_url``; every history connection it opened is closed at the end of the test
    (an open PostgreSQL connection left to the garbage collector warns)."""
    from plait import Store

    opened: list[Any] = []

    def _open(name: str = "store") -> Any:
        store = Store(tmp_path / name, history=history_url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.history.close()


# -- S3: a local moto server ---------------------------------------------------------------
# One real S3 API (moto's server on a loopback port) for the whole session; each test gets a
# bucket of its own. boto3 and moto are imported only by the tests that use them.


@pytest.fixture(scope="session")
def endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


_buckets = iter(range(1_000_000))


@pytest.fixture
def s3_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """A fresh bucket on the moto server, and a boto3 client to look inside it."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    name = f"plait-test-{next(_buckets)}"
    client.create_bucket(Bucket=name)
    yield client, name
    client.close()


# -- Redis: a real redis-server ------------------------------------------------------------
# One throwaway server (Debian's redis-server, installed by .ci/system.sh) on a free loopback
# port for the whole session, with no persistence; each test gets a flushed database.


def _start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A redis-server on ``127.0.0.1:port`` (no persistence, files in ``folder``), once it
    answers ``PING``."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "the Redis tests need redis-server: run .ci/system.sh (Debian package)", pytrace=False
        )
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"redis-server did not start on port {port}", pytrace=False)
        time.sleep(0.05)


def _stop_redis(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL (``redis://127.0.0.1:PORT``) of a redis-server for the whole session."""
    root = Path(tempfile.mkdtemp(prefix="plait-redis-"))
    port = _free_port()
    process = _start_redis(port, root)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop_redis(process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """Starts a redis-server on a given loopback port in the middle of a test (a server
    that comes up late); the URL of its database 0; stopped when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> str:
        started.append(_start_redis(port, tmp_path))
        return f"redis://127.0.0.1:{port}/0"

    yield start
    for process in started:
        _stop_redis(process)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A flushed database (``redis://127.0.0.1:PORT/0``) on the session's redis-server."""
    with socket.create_connection(("127.0.0.1", int(redis_server.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"SELECT 0\r\nFLUSHDB\r\n")  # database 0 only: 15 is the Celery tests'
        replies = b""
        while replies.count(b"\r\n") < 2:
            replies += sock.recv(64)
        assert replies == b"+OK\r\n+OK\r\n", replies
    return f"{redis_server}/0"
