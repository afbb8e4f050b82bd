"""A new user's first hour: the wheel in a fresh virtualenv, a fresh ``startproject`` whose tasks
live in an app, configured only as the README says, and a chain run from the admin on a worker.

Twice: without django-celery-results (Redis result backend), then with it ("django-db"). The
virtualenv is made once (pip's cache keeps it quick) and django-celery-results is added to it
for the second project. Nothing of this repository is on the new project's path but the wheel.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from project import localredis
from tests.support.workers import build_wheel, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.newuser]

PASSWORD = secrets.token_urlsafe(12)

# Celery's "First steps with Django", as written there.
CELERY_PY = '''
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

app = Celery("mysite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(bind=True, ignore_result=True)
def debug_task(self):
    print(f"Request: {self.request!r}")
'''
INIT_PY = 'from .celery import app as celery_app\n\n__all__ = ("celery_app",)\n'
TASKS_PY = '''
from celery import shared_task


@shared_task
def add(x, y):
    return x + y
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(argv, *, cwd, env, timeout=300) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh virtualenv holding the built wheel and what it requires, nothing else."""
    where = tmp_path_factory.mktemp("newuser")
    wheel = build_wheel(where / "dist")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(where / "venv")], check=True, timeout=120)
    env = _clean_env()
    python = where / "venv" / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
         cwd=where, env=env, timeout=600)
    # A Redis database of the new projects' own: the suite's session worker consumes the
    # default queue of this run's database and must not take (and refuse) their tasks.
    token = secrets.token_hex(8)
    server = os.environ["REDIS_URL"]
    redis_url = localredis.with_db(server, localredis.claim_database(server, token))
    yield {"python": python, "wheel": wheel, "dir": where, "redis_url": redis_url}
    localredis.release_database(redis_url, token)


def _clean_env() -> dict[str, str]:
    """The environment of a shell that knows nothing of this repository's tests."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "TASK_ADMIN", "PYTHON", "VIRTUAL_ENV", "CELERY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Project:
    """A fresh ``startproject mysite`` with an app ``shop``, set up from the README."""

    def __init__(self, venv, name: str, *, with_results: bool):
        self.python = str(venv["python"])
        self.dir = venv["dir"] / name
        self.dir.mkdir()
        self.env = _clean_env()
        self.processes: list[subprocess.Popen] = []
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        admin = str(Path(self.python).parent / "django-admin")
        _run([admin, "startproject", "mysite", "."], cwd=self.dir, env=self.env)
        _run([self.python, "manage.py", "startapp", "shop"], cwd=self.dir, env=self.env)
        (self.dir / "mysite" / "celery.py").write_text(CELERY_PY)
        (self.dir / "mysite" / "__init__.py").write_text(INIT_PY)
        (self.dir / "shop" / "tasks.py").write_text(TASKS_PY)
        redis_url = venv["redis_url"]
        apps = ["django_celery_beat", "import_export"]
        if with_results:
            apps.append("django_celery_results")
        apps += ["task_admin", "shop"]
        backend = "django-db" if with_results else redis_url
        settings = self.dir / "mysite" / "settings.py"
        settings.write_text(settings.read_text() + textwrap.dedent(f"""

            # --- as the README of django-celery-workflows says ---
            INSTALLED_APPS += {apps!r}
            CELERY_BROKER_URL = {redis_url!r}
            CELERY_RESULT_BACKEND = {backend!r}
            CELERY_ACCEPT_CONTENT = ["json"]
            CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
            DATABASES["default"]["OPTIONS"] = {{
                "transaction_mode": "IMMEDIATE", "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL;",
            }}
        """))

    def manage(self, *args: str) -> str:
        return _run([self.python, "manage.py", *args], cwd=self.dir, env=self.env)

    def start(self, *argv: str, log: str) -> subprocess.Popen:
        with (self.dir / log).open("wb") as out:
            process = subprocess.Popen(
                list(argv), cwd=self.dir, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.dir / name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class _FormFields(HTMLParser):
    """What a browser would submit from a page's forms: inputs, checked boxes, selections."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.setdefault(name, a.get("value") or ("on" if a.get("type") in (
                "checkbox", "radio") else ""))
        elif tag == "select" and name:
            self._select = name
            self.fields.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data


def form_fields(page: str) -> dict[str, str]:
    parser = _FormFields()
    parser.feed(page)
    parser.fields.pop("csrfmiddlewaretoken", None)
    return parser.fields


class Browser:
    """Just enough of a browser for Django's admin: cookies, CSRF tokens, redirects."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[str, str]:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.geturl(), response.read().decode()

    def submit(self, path: str, values: dict[str, str]) -> tuple[str, str]:
        """Load the form at ``path`` and post what a browser would, with ``values`` typed in."""
        _url, page = self.get(path)
        return self.post(path, {**form_fields(page), **values})

    def post(self, path: str, data: dict[str, str]) -> tuple[str, str]:
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(self.base + path, data=body,
                                         headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=30) as response:
            return response.geturl(), response.read().decode()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def run_a_chain_from_the_admin(project: Project, *, with_results: bool) -> None:
    check = project.manage("check")
    assert "System check identified no issues (0 silenced)." in check, check
    project.manage("migrate", "--noinput")
    env = {**project.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    _run([project.python, "manage.py", "createsuperuser", "--noinput", "--username", "admin",
          "--email", "admin@example.com"], cwd=project.dir, env=env)
    celery = str(Path(project.python).parent / "celery")
    worker = project.start(
        celery, "-A", "mysite", "worker", "--loglevel", "INFO", "--concurrency", "2",
        "--hostname", f"newuser-{secrets.token_hex(4)}@%h", log="worker.log",
    )
    project.start(project.python, "manage.py", "runserver", "--noreload",
                  f"127.0.0.1:{project.port}", log="web.log")
    wait_for(lambda: _answers(project.base + "/admin/login/"), timeout=180,
             what="the new project's runserver")
    wait_for(lambda: "ready." in project.log("worker.log") or worker.poll() is not None,
             timeout=180, what="the new project's worker")
    assert worker.poll() is None, project.log("worker.log")

    browser = Browser(project.base)
    browser.get("/admin/login/")
    url, page = browser.post("/admin/login/?next=/admin/",
                             {"username": "admin", "password": PASSWORD, "next": "/admin/"})
    assert url.endswith("/admin/"), page[-2000:]

    # The task picker offers the app's task at the defaults (no TASK_ADMIN setting at all).
    _url, page = browser.get("/admin/task_admin/taskinvocation/add/")
    assert "shop.tasks.add" in page and "mysite.celery.debug_task" in page
    assert "celery.backend_cleanup" not in page

    invocations = [("two plus two", "[2, 2]"), ("plus four", "[4]")]
    for name, args in invocations:
        url, page = browser.submit("/admin/task_admin/taskinvocation/add/", {
            "name": name, "task": "shop.tasks.add", "args": args, "kwargs": "{}",
            "_save": "Save",
        })
        assert url.endswith("/admin/task_admin/taskinvocation/"), _errors(page)
    _url, page = browser.get("/admin/task_admin/taskinvocation/")
    ids = {name: re.search(rf'/taskinvocation/(\d+)/change/[^>]*>{name}<', page).group(1)
           for name, _args in invocations}

    # A chain of the two invocations, composed on the Add page and saved once, as staff would.
    tree = {"version": 1, "root": {"kind": "chain", "children": [
        {"kind": "task", "invocation": int(ids[name])} for name, _args in invocations
    ]}}
    url, page = browser.submit("/admin/task_admin/workflow/add/", {
        "name": "first chain", "enabled": "on", "tree": json.dumps(tree), "_continue": "Save",
    })
    match = re.search(r"/workflow/(\d+)/change/", url)
    assert match, _errors(page)
    assert "draft" not in page, _errors(page)
    workflow_url = f"/admin/task_admin/workflow/{match.group(1)}/"

    # Run it from its run page.
    url, page = browser.submit(workflow_url + "run/", {})
    match = re.search(r"/workflowrun/(\d+)/change/", url)
    assert match, _errors(page)
    status_url = f"/admin/task_admin/workflowrun/{match.group(1)}/status/"

    def finished():
        _url, body = browser.get(status_url)
        state = json.loads(body)
        return state if state["finished"] else None

    state = wait_for(finished, timeout=180, interval=0.3, what="the chain to finish")
    assert state["status"] == "succeeded", (state, project.log("worker.log"))
    assert [node["result"] for node in state["nodes"]] == ["4", "8"], state
    _url, page = browser.get(f"/admin/task_admin/workflowrun/{match.group(1)}/change/")
    # Links to django-celery-results' rows exist only when it is installed.
    assert ("result backend row" in page) == with_results


def _errors(page: str) -> str:
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S)
    return "\n".join(found) or page[-3000:]


def test_without_django_celery_results_on_a_redis_result_backend(venv):
    probe = "import importlib.util as u; print(u.find_spec('django_celery_results') is None)"
    assert _run([str(venv["python"]), "-c", probe], cwd=venv["dir"], env=_clean_env()).strip() \
        == "True", "django-celery-results must not be installed for this case"
    project = Project(venv, "without_results", with_results=False)
    try:
        run_a_chain_from_the_admin(project, with_results=False)
    finally:
        project.stop()


def test_with_django_celery_results(venv):
    _run([str(venv["python"]), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          f"{venv['wheel']}[results]"], cwd=venv["dir"], env=_clean_env(), timeout=600)
    project = Project(venv, "with_results", with_results=True)
    try:
        run_a_chain_from_the_admin(project, with_results=True)
    finally:
        project.stop()
