"""The layering of docs/architecture.md is checked by import-linter (``make lint``, so CI).

These tests run the same contracts: on the code as it is, and on a copy with a cycle added
back, which must fail (so the contracts are not vacuous).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "setup.cfg"), "--no-cache"],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_with(tmp_path: Path, module: str, line: str) -> Path:
    shutil.copytree(
        ROOT / "task_admin", tmp_path / "task_admin", ignore=shutil.ignore_patterns("__pycache__")
    )
    path = tmp_path / "task_admin" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    return tmp_path


def test_the_code_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The two cycles the layering once had: a model calling validation, services the tasks.
        ("models/invocations.py", "from task_admin import validation", "No import cycles"),
        ("services.py", "from task_admin import tasks", "No import cycles"),
        ("canvas/spec.py", "import django", "task_admin.canvas is not allowed to import django"),
        ("tracking.py", "from task_admin.admin import runs", "Nothing imports task_admin.admin"),
    ],
)
def test_a_dependency_against_the_layers_fails(tmp_path, module, line, broken):
    result = lint_imports(copy_with(tmp_path, module, line))
    assert result.returncode != 0
    broken_section = result.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section
