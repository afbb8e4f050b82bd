"""Start and stop real Celery processes for integration tests; wait without sleeping blindly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(outdir: Path) -> Path:
    """Build the wheel of this checkout into ``outdir`` and return its path.

    setuptools stages files in ``build/`` and never removes what is no longer in the source: a
    module or migration deleted since an earlier build would ship in the wheel. Start clean.
    """
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = outdir.glob("django_celery_workflows-*.whl")
    return wheel
T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Return the predicate's first truthy value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class CeleryProcess:
    kind: str
    nodename: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"celery {self.kind} exited; its log:\n{self.log()[-5000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker, main process and pool children: no handler runs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20.0, *, main_only: bool = False) -> None:
        """SIGTERM, then SIGKILL after ``timeout``. To the whole process group by default
        (quick: pool children stop at once, and the main process logs the jobs they were
        running as lost); ``main_only``: to the main process alone, Celery's warm shutdown as
        an operator sends it, which lets running jobs finish (for a test that reads the log)."""
        if self.process.poll() is None:
            if main_only:
                os.kill(self.process.pid, signal.SIGTERM)
            else:
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_celery(kind: str, *, log_dir: Path, app, extra: tuple[str, ...] = (),
                 nodename: str | None = None, env: dict[str, str] | None = None,
                 app_module: str = "tests.testapp",
                 settings: str = "tests.settings") -> CeleryProcess:
    """Start ``celery worker`` or ``celery beat`` against the test database and wait for it.

    The process loads the test app (``-A tests.testapp``) on the test settings unless
    ``app_module`` and ``settings`` say otherwise (the demo worker: ``project``,
    ``tests.settings_demo``). ``nodename`` (``name@%h``) starts a worker under a name used
    before, as a restart does.
    """
    nodename = nodename or f"test-{uuid.uuid4().hex[:8]}@%h"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        # pytest-django has renamed the database in place: hand the test database to the child.
        "TASK_ADMIN_WORKER_DB": str(connection.settings_dict["NAME"]),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    argv = [sys.executable, "-m", "celery", "-A", app_module, kind, "--loglevel", "INFO"]
    if kind == "worker":
        argv += ["--pool", "prefork", "--concurrency", "2", "--hostname", nodename,
                 "--without-gossip", "--without-mingle"]
    argv += list(extra)
    log_path = log_dir / f"{kind}-{nodename.split('@')[0]}-{uuid.uuid4().hex[:4]}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # so stop() reaches the pool children too
        )
    celery = CeleryProcess(kind, nodename.replace("%h", os.uname().nodename), process, log_path)
    if kind == "worker":
        def ready():
            celery.assert_alive()
            return app.control.ping(destination=[celery.nodename], timeout=0.5)

        try:
            wait_for(ready, timeout=60, what=f"worker {celery.nodename} to answer a ping")
        except BaseException:
            celery.stop()
            raise
    return celery
