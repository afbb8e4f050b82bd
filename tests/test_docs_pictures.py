"""The pictures of README.md and docs/: each one shown exists, each one kept is shown or listed,
and each one the browser tests take (``make screenshots``) is committed."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Markdown images and links to a picture: ![alt](path.png), [text](path.png).
LINK = re.compile(r"\]\(([^)\s]+\.png)\)")
NAMED = re.compile(r"`(\w+\.png)`")


def test_every_picture_shown_exists():
    missing = [f"{page.relative_to(ROOT)}: {target}" for page in PAGES
               for target in LINK.findall(page.read_text())
               if not (page.parent / target).is_file()]
    assert not missing


def test_every_picture_kept_is_shown_or_listed():
    shown = {Path(target).name for page in PAGES for target in LINK.findall(page.read_text())}
    # Named in the text (README's "More in docs/screenshots: ... `run_page.png`") or in the
    # list that make screenshots writes next to the pictures.
    named = {name for page in [*PAGES, SHOTS / "README.md"]
             for name in NAMED.findall(page.read_text())}
    orphans = sorted(path.name for path in SHOTS.glob("*.png") if path.name not in shown | named)
    assert not orphans


def test_every_picture_the_browser_tests_take_is_committed():
    taken = {name for path in (ROOT / "tests" / "browser").glob("test_*.py")
             for name in re.findall(r'shoot\(\s*"(\w+)"', path.read_text())}
    assert taken  # the pattern still finds the calls
    assert not sorted(name for name in taken if not (SHOTS / f"{name}.png").is_file())
    listed = set(NAMED.findall((SHOTS / "README.md").read_text()))
    assert {f"{name}.png" for name in taken} <= listed
