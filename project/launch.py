"""``make demo``: Redis, migrations, demo data, an admin user, then worker + beat + web server.

Every child runs in its own process group and is stopped on Ctrl-C (or when one of them dies).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from project import localredis

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def manage(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def admin_arguments(password: str) -> list[str]:
    """``demo_admin``'s arguments: the password joined to its option, since a generated one may
    start with "-" (``token_urlsafe``), which argparse would take for an option of its own."""
    return ["--username", "admin", f"--password={password}"]


def start(name: str, argv: list[str], env: dict) -> subprocess.Popen:
    child = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
    say(f"started {name} (pid {child.pid}): {' '.join(argv[1:])}")
    return child


def stop_all(children: dict[str, subprocess.Popen]) -> None:
    for name, child in children.items():
        if child.poll() is None:
            say(f"stopping {name}")
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in time: killing it")
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONUNBUFFERED": "1"}
    redis = localredis.ensure(env.get("REDIS_URL", "redis://localhost:6379/0"))
    say(f"Redis: {redis.how}")
    env["REDIS_URL"] = redis.url
    port = env.get("DEMO_PORT", "8000")
    children: dict[str, subprocess.Popen] = {}
    # Ctrl-C reaches this process only: the children are in their own sessions. SIGINT is set
    # explicitly because a shell starting us in the background hands it down ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        manage("migrate", "--noinput", env=env)
        fixtures = sorted(str(p) for p in (ROOT / "fixtures").glob("*.json"))
        if fixtures:
            manage("demo_load", *fixtures, env=env)
        manage("demo_schedules", env=env)
        password = env.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
        manage("demo_admin", *admin_arguments(password), env=env)
        celery = [sys.executable, "-m", "celery", "-A", "project"]
        children["worker"] = start(
            "worker", [*celery, "worker", "-l", "info", "--concurrency", "2"], env
        )
        children["beat"] = start("beat", [*celery, "beat", "-l", "info"], env)
        children["web"] = start(
            "web server",
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            env,
        )
        say(f"admin: http://127.0.0.1:{port}/admin/  user: admin  password: {password}")
        say("press Ctrl-C to stop everything")
        while all(child.poll() is None for child in children.values()):
            time.sleep(0.5)
        dead = [name for name, child in children.items() if child.poll() is not None]
        say(f"{', '.join(dead)} exited: stopping the rest")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(children)
        if redis.process:
            say("stopping the Redis server started for the demo")
        redis.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
