"""Open and save big workflows in the admin, through Django's test client (no browser).

    .venv/bin/python -m bench.workflow_pages            # 300 and 1,000 nodes, 5 rounds each
    BENCH_PAGE_ROUNDS=9 .venv/bin/python -m bench.workflow_pages
    make bench                                          # also runs these, in its admin section

Each size is a chain of groups of task nodes (the 1,000-node one: a chain of 9 groups of 110
tasks), over 200 task invocations, on a fresh SQLite database of its own (or ``DATABASE_URL``).
"open" is GET of the change page (composer document, shared invocation list, preview with
graph and problems); "save" is POST of the page's own document with one label changed, as the
composer sends it, followed by the redirect the admin answers with (not fetched). Medians of
the rounds, and the number of SQL queries of one request. The targets (issue 10): open < 1 s,
save < 2 s at 1,000 nodes on the 2-core CI machine. ``rows()`` returns the table for a caller
(``make bench``) that prints several.
"""

from __future__ import annotations

import html
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="task-admin-bench-pages-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{WORK}/pages.sqlite3")

ROUNDS = int(os.environ.get("BENCH_PAGE_ROUNDS", "5"))
SIZES = (300, 1000)
INVOCATIONS = 200
TASK = "project.demo.tasks.suma"  # suma(a, b): the demo project's


def _setup():
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0, interactive=False)


def _shape(size: int) -> tuple[int, int]:
    """(groups, tasks per group) so that 1 chain + groups + tasks == size."""
    groups = max(1, size // 110)
    per_group = -(-(size - 1 - groups) // groups)  # rounded up; the last group takes the rest
    return groups, per_group


def _workflow(size: int):
    from task_admin.models import NodeKind, NodeRole, TaskInvocation, Workflow, WorkflowNode

    # Its own invocations: the throughput cases delete and remake theirs on every run, which
    # a workflow here must not hold (PROTECT) when the bench runs again on the same database.
    own = TaskInvocation.objects.filter(name__startswith="bench add ").order_by("pk")
    invocations = list(own[:INVOCATIONS])
    if len(invocations) < INVOCATIONS:
        TaskInvocation.objects.bulk_create(
            TaskInvocation(name=f"bench add {i}", task=TASK, args=[i, i])
            for i in range(len(invocations), INVOCATIONS)
        )
        invocations = list(own[:INVOCATIONS])
    # Made afresh: a bench stopped midway leaves its workflow behind.
    Workflow.objects.filter(name=f"bench {size} nodes").delete()
    wf = Workflow.objects.create(name=f"bench {size} nodes")
    root = WorkflowNode.objects.create(workflow=wf, kind=NodeKind.CHAIN)
    groups, per_group = _shape(size)
    made = WorkflowNode.objects.bulk_create(
        WorkflowNode(workflow=wf, parent=root, kind=NodeKind.GROUP, position=g)
        for g in range(groups)
    )
    # A chain of groups: each group after the first receives the previous group's results.
    # Immutable invocations would change nothing here; suma(i, i) with a parent result fails
    # the signature check, which is fine: a big draft is as costly to show as a valid tree.
    tasks = size - 1 - groups
    WorkflowNode.objects.bulk_create(
        WorkflowNode(workflow=wf, parent=made[i // per_group], kind=NodeKind.TASK,
                     role=NodeRole.STEP, position=i % per_group,
                     invocation=invocations[i % INVOCATIONS])
        for i in range(tasks)
    )
    return wf


def _tree_field(page: str) -> str:
    """The composer's hidden document, as the browser would post it back."""
    match = re.search(r'<input type="hidden" name="tree" value="([^"]*)"', page)
    assert match, "no tree field on the page"
    return html.unescape(match.group(1))


def _median(values: list[float]) -> float:
    return statistics.median(values)


def rows() -> list[tuple[str, str, str]]:
    """``[(case, median seconds, queries)]`` for the sizes in ``SIZES``."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from task_admin.models import TaskInvocation, Workflow

    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or (
        user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    )
    client = Client()
    client.force_login(user)
    out = []
    # The typed calls' invocations are removed at the end, with the workflows that use them:
    # left behind, the next run on the same database found its "new" calls saved already and
    # opened pages that listed thousands more invocations.
    made_after = TaskInvocation.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        for size in SIZES:
            out += _size_rows(client, size)
    finally:
        Workflow.objects.filter(name__in=[f"bench {size} nodes" for size in SIZES]).delete()
        TaskInvocation.objects.filter(pk__gt=made_after).exclude(
            name__startswith="bench add ").delete()
    return out


def _size_rows(client, size: int) -> list[tuple[str, str, str]]:
    """Open and save a ``size``-node workflow, then the same with its calls typed in."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from task_admin.models import TaskInvocation

    out = []
    wf = _workflow(size)
    count = wf.nodes.count()
    url = reverse("admin:task_admin_workflow_change", args=[wf.pk])
    client.get(url)  # warm: templates, the task registry
    opens, saves = [], []
    open_queries = save_queries = 0
    for i in range(ROUNDS):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)
            opens.append(time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
        open_queries = len(queries)
        page = response.content.decode()
        tree = json.loads(_tree_field(page))
        tree["root"]["label"] = f"round {i}"
        # What the browser posts: every hidden field (other inlines' management forms),
        # the workflow's fields and the composer's document.
        data = {name: html.unescape(value) for name, value in re.findall(
            r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
        data.update({"name": wf.name, "description": "", "enabled": "on",
                     "tree": json.dumps(tree), "_continue": "1"})
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.post(url, data)
            saves.append(time.perf_counter() - start)
        assert response.status_code == 302, re.findall(
            r"<ul class=\"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S
        )
        save_queries = len(queries)
    assert wf.nodes.count() == count
    # The invocations on the site: the page carries only its tree's (the composer fetches
    # the rest), which the figures show by staying flat as these grow.
    offered = TaskInvocation.objects.count()
    out.append((f"open a {count}-node workflow ({offered:,} invocations)",
                f"{_median(opens):.3f}", str(open_queries)))
    out.append((f"save a {count}-node workflow", f"{_median(saves):.3f}", str(save_queries)))
    out += _inline_rows(client, wf, data, count)
    return out


def _inline_rows(client, wf, data: dict, count: int) -> list[tuple[str, str, str]]:
    """The same tree with every task node's call typed in the composer (``{"task", "args"}``
    instead of an invocation id): checked against the signature node by node, then saved with
    one new invocation per distinct call, or saved again when they all exist (reused)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from task_admin.models import TaskInvocation

    url = reverse("admin:task_admin_workflow_change", args=[wf.pk])
    preview_url = reverse("admin:task_admin_workflow_preview")

    def inline_tree(offset: int) -> dict:
        tree = json.loads(data["tree"])
        number = 0
        for group in tree["root"]["children"]:
            for i, task in enumerate(group["children"]):
                number += 1
                # suma(a, b) as a group member after the first group receives the previous
                # group's results: one argument, the parent result being "a".
                group["children"][i] = {
                    "kind": "task", "key": task["key"], "label": "",
                    "task": TASK,
                    "args": [offset + number] if tree["root"]["children"].index(group) else
                    [offset + number, 1],
                    "kwargs": {}, "immutable": False,
                }
        return tree

    previews, creates, reuses = [], [], []
    preview_queries = create_queries = reuse_queries = 0
    for i in range(ROUNDS):
        # Arguments no earlier round (or size) used: every call is new to the database.
        tree = inline_tree(100_000_000 * count + 1_000_000 * (i + 1))
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.post(preview_url, {"tree": json.dumps(tree),
                                                 "workflow": str(wf.pk)})
            previews.append(time.perf_counter() - start)
        assert response.status_code == 200 and not response.json()["blocking"], (
            response.json()["problems"][:3])
        preview_queries = len(queries)
        before = TaskInvocation.objects.count()
        for times, key in ((creates, "create"), (reuses, "reuse")):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.post(url, {**data, "tree": json.dumps(tree)})
                times.append(time.perf_counter() - start)
            assert response.status_code == 302, re.findall(
                r"<ul class=\"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S
            )[:3]
            if key == "create":
                create_queries = len(queries)
                made = TaskInvocation.objects.count() - before
            else:
                reuse_queries = len(queries)
    assert wf.nodes.count() == count
    calls = made
    return [
        (f"preview {count} nodes, {calls} calls typed in", f"{_median(previews):.3f}",
         str(preview_queries)),
        (f"save {count} nodes, {calls} typed calls, all new", f"{_median(creates):.3f}",
         str(create_queries)),
        (f"save {count} nodes, {calls} typed calls, all saved", f"{_median(reuses):.3f}",
         str(reuse_queries)),
    ]


def main() -> int:
    _setup()
    table = rows()
    width = max(len(case) for case, *_ in table)
    database = os.environ["DATABASE_URL"].split(":", 1)[0]
    print(f"{'case':<{width}}  median s  queries   ({ROUNDS} rounds, {database})")
    for case, seconds, queries in table:
        print(f"{case:<{width}}  {seconds:>8}  {queries:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
