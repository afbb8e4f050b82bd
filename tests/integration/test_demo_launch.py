"""The README's demo command: everything comes up, the printed login works, Ctrl-C stops all."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from project import localredis
from tests.support.workers import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def login(base: str, password: str) -> str:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(f"{base}/admin/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": "admin", "password": password,
         "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(f"{base}/admin/login/", data, headers={"Referer": base})
    return opener.open(request).read().decode()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_comes_up_and_stops_on_ctrl_c(tmp_path):
    port = localredis._free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path}/demo.sqlite3",
        "DEMO_PORT": str(port),
    }
    env.pop("DEMO_ADMIN_PASSWORD", None)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        # Started as a shell starts `make demo &`: SIGINT ignored. Ctrl-C must still stop it.
        # A shell ignores it and execs the demo (same pid): a preexec_fn would fork this
        # process, threads and all, and a child forked while another thread held a lock could
        # hang before its exec (the demo then never printed anything in a full suite run).
        demo = subprocess.Popen(
            ["/bin/sh", "-c", "trap '' INT; exec \"$0\" -m project.launch", sys.executable],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        pattern = re.compile(r"admin: (\S+)/admin/\s+user: admin\s+password: (\S+)")
        try:
            line = wait_for(
                lambda: pattern.search(log.read_text()),
                timeout=120, what="the demo to print its admin URL",
            )
        except AssertionError as exc:
            # What the demo said so far is what tells which step hung.
            raise AssertionError(f"{exc}; the demo printed:\n{log.read_text()[-4000:]}") from None
        base, password = line.group(1), line.group(2)
        page = wait_for(lambda: _try(login, base, password), timeout=30, what="the login")
        assert "Log out" in page and "Site administration" in page
        # The index dashboard lists the demo's beat schedule.
        assert "Tutorial chain every 2 minutes" in page
        pids = _started_pids(log)
        assert len(pids) == 3  # worker, beat, web server
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # Never leave the demo's worker, beat and web server behind a failed test.
            demo.kill()
            for pid in _started_pids(log):
                _kill_group(pid)
            raise
    text = log.read_text()
    assert code == 0, text
    assert "[demo] stopped" in text
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)]


def _try(function, *args):
    try:
        return function(*args)
    except OSError:
        return None


def _started_pids(log: Path) -> list[int]:
    return [int(p) for p in re.findall(r"started \w[\w ]* \(pid (\d+)\)", log.read_text())]


def _kill_group(pid: int) -> None:
    """Each demo child leads its own session, so its pid names its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
