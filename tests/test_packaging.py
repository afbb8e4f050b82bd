import zipfile
from pathlib import Path

import pytest

from tests.support.workers import build_wheel

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # A module deleted after an earlier build: setuptools' staging folder still holds it.
    stale = ROOT / "build" / "lib" / "task_admin" / "deleted_since_last_build.py"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("")
    path = build_wheel(tmp_path_factory.mktemp("dist"))
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    return names, metadata.decode()


def test_wheel_holds_the_app_with_its_data(wheel):
    wheel, _ = wheel
    source = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "task_admin").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert source, "the app has files"
    assert source <= wheel, f"missing from the wheel: {sorted(source - wheel)}"
    shipped = {name for name in wheel if name.startswith("task_admin/")}
    assert shipped <= source, f"not in the source: {sorted(shipped - source)}"
    assert any(name.startswith("task_admin/migrations/0001") for name in wheel)
    assert any(name.startswith("task_admin/templates/") for name in wheel)
    assert any(name.startswith("task_admin/static/") for name in wheel)


def test_wheel_leaves_out_tests_and_demo(wheel):
    wheel, _ = wheel
    top_level = {name.split("/", 1)[0] for name in wheel}
    assert {"tests", "project", "bench", "fixtures", "templates"}.isdisjoint(top_level)
    assert "task_admin" in top_level


def test_wheel_declares_its_dependencies(wheel):
    _, metadata = wheel
    requires = {
        line.split(":", 1)[1].split(";")[0].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert {
        "Django<6.1,>=5.2",
        "celery[redis]<6,>=5.4",
        "django-celery-beat<3,>=2.7",
        "django-import-export<5,>=4.1",
    } <= requires
    assert any(r.startswith("pytest-django") for r in requires)  # the test extra
    # Optional: the database result backend and links to its rows.
    assert 'django-celery-results<3,>=2.5; extra == "results"' in metadata
    assert "Name: django-celery-workflows" in metadata


def test_wheel_declares_the_versions_it_supports(wheel):
    _, metadata = wheel
    classifiers = {
        line.split(":", 1)[1].strip() for line in metadata.splitlines()
        if line.startswith("Classifier:")
    }
    assert {"Framework :: Django :: 5.2", "Framework :: Django :: 6.0",
            "Programming Language :: Python :: 3.11", "Programming Language :: Python :: 3.12",
            "Programming Language :: Python :: 3.13", "Natural Language :: Spanish"} <= classifiers
