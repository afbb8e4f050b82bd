"""The supported-versions matrix: `make matrix` (or `nox`) runs it; CI runs it too.

Each session installs one Django and one Celery release and runs the fast tests plus one chain
on a real worker. Django 6 needs Python 3.12+; a session whose Python is not installed here is
skipped, saying so (nox prints "Missing interpreters"). The README's "Supported versions" table
says what was last run.
"""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

import nox

nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = False
nox.options.default_venv_backend = "venv"

# (python, Django, Celery): Celery 5.4, 5.5 and the latest on Django 5.2 LTS, the latest Celery
# on Django 6.0; each declared Python at least once. "latest" is the newest release the
# declared range allows. The full suite runs on Python 3.11 with the newest releases.
MATRIX = [
    ("3.11", "5.2", "5.4"),
    ("3.11", "5.2", "5.5"),
    ("3.13", "5.2", "latest"),
    ("3.12", "6.0", "latest"),
]

# Kept small: CI runs every session. What depends on Django's and Celery's versions: building
# canvases, the checks and the task registry, admin pages (every URL, with permissions),
# translations, running without django-celery-results, and one chain on a real worker.
# Celery 5.4 allows any kombu 5.x, but kombu 5.6+ needs redis-py 6.1, which Celery 5.4's redis
# extra refuses: take the kombu of Celery 5.4's time, as a project pinned to Celery 5.4 must.
KOMBU = {"5.4": ("kombu~=5.4.0",)}

FAST_TESTS = [
    "tests/canvas/test_build.py",
    "tests/test_checks.py",
    "tests/test_conf.py",
    "tests/test_registry.py",
    "tests/test_localredis.py",
    "tests/test_migrations.py::test_no_missing_migrations",
    "tests/test_receivers.py::test_a_worker_of_several_processes_on_sqlite_says_so",
    "tests/test_optional_results.py",
    "tests/test_translations.py",
    "tests/admin/test_smoke_permissions.py",
    "tests/integration/test_runs.py::test_tutorial_chain",
]


def _add_pyenv_pythons_to_path() -> None:
    # pyenv's shims answer only for the selected version; put the interpreters themselves first.
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for minor in ("3.13", "3.12", "3.11"):
        found = sorted(glob.glob(os.path.join(root, "versions", f"{minor}.*", "bin")))
        if found:
            os.environ["PATH"] = found[-1] + os.pathsep + os.environ["PATH"]


_add_pyenv_pythons_to_path()


def _requirement(name: str, version: str) -> str:
    return name if version == "latest" else f"{name}~={version}.0"


@nox.session
@nox.parametrize(
    ("python", "django", "celery"),
    MATRIX,
    ids=[f"py{p}-django{d}-celery{c}" for p, d, c in MATRIX],
)
def tests(session: nox.Session, django: str, celery: str) -> None:
    # Reinstall only when what is installed would change: CI keeps these virtualenvs.
    wanted = hashlib.sha256(
        (Path("setup.cfg").read_text() + repr((django, celery, KOMBU.get(celery)))).encode()
    ).hexdigest()
    marker = Path(session.virtualenv.location) / ".task_admin-installed"
    if marker.exists() and marker.read_text() == wanted and "--reinstall" not in session.posargs:
        # The project itself is found on the path (tests run from the checkout), so a new
        # checkout needs no reinstall either.
        _run_tests(session)
        return
    session.install(
        "-e", ".[test]",
        _requirement("Django", django),
        _requirement("celery[redis]", celery),
        *KOMBU.get(celery, ()),
        "--upgrade-strategy", "only-if-needed",
    )
    if celery == "latest":
        session.install("--upgrade", "celery[redis]<6")
    marker.write_text(wanted)
    _run_tests(session)


def _run_tests(session: nox.Session) -> None:
    session.run("python", "-c", "import django, celery, kombu; print('Django', "
                "django.get_version(), '/ Celery', celery.__version__, '/ kombu', "
                "kombu.__version__)")
    args = [a for a in session.posargs if a != "--reinstall"]
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *FAST_TESTS, *args)
