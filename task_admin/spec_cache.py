"""Compiled workflows kept per process, used only while the database proves them current.

A start used to read the workflow's tree (a round trip, and model instances for every node)
and compile it every time, though most workflows are started again and again unchanged. Here
each process keeps the spec it compiled, with the ``compile.Fingerprint`` of the rows it was
compiled from. A start does not read the tree: its one ``INSERT`` carries the fingerprint as
its condition (``models.new_runs.insert_run(only_if=...)``), checked by PostgreSQL in the
statement's own snapshot, so a run is recorded only from a tree that is still what it was. If
anything changed (an edit in the admin, an import, ``QuerySet.update``, raw SQL: the digest is
of the rows' content), the insert writes nothing, the entry is dropped and the start compiles
the tree again (``services.run_prepared``); a kept spec a check refuses is read again before
the refusal stands (``services.prepare_run``), and one that passed the check as it is (no
overrides, no countdown or eta: nothing that depends on the run or the time) is not checked
again while the registry gives the same allowed tasks (``note_passed``).

Only PostgreSQL fingerprints (SQLite is in process: reading the tree costs no round trip), and
not a tree that reuses other workflows. Kept specs are frozen dataclasses shared by threads;
their argument values are copied into each signature (``canvas.build``), so a task run in
process cannot change them. Each process keeps at most ``TASK_ADMIN["SPEC_CACHE_SIZE"]``
stored nodes' worth of trees, the least recently started dropped first (0 turns the cache
off); a change of ``TASK_ADMIN`` empties it (``MAX_DEPTH`` shapes a compile).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.core.signals import setting_changed
from django.db import router
from django.dispatch import receiver

from task_admin import canvas
from task_admin.compile import Fingerprint, load_fingerprinted, workflow_to_spec
from task_admin.conf import get_config
from task_admin.models import Workflow, WorkflowNode, WorkflowRun


@dataclass(frozen=True)
class Compiled:
    """A workflow's spec, and the condition under which it is still the stored tree's (None:
    no condition can say so; the spec was read just now). ``kept``: from an earlier call."""

    spec: canvas.Node
    current_if: Fingerprint | None
    kept: bool = False
    # The allowed tasks (``registry.signatures()``, the mapping itself) against which this
    # spec, as it is (no overrides), passed the start's check; None: not checked yet.
    passed: Mapping | None = None


_entries: OrderedDict[tuple[str, int], Compiled] = OrderedDict()
# The memory kept is about proportional to the nodes of the kept trees: the budget counts them.
_sizes: dict[tuple[str, int], int] = {}
_kept_nodes = 0
_lock = threading.Lock()


def _after_fork() -> None:
    # A child forked while another thread held the lock would wait for it for ever; the
    # entries stay valid (each start checks them).
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def compiled(workflow: Workflow) -> Compiled:
    """The workflow's spec: kept from an earlier call, or compiled now (and kept when it can be
    fingerprinted). Raises ``compile.InvalidWorkflow`` as ``workflow_to_spec`` does."""
    global _kept_nodes
    read = router.db_for_read(WorkflowNode) or "default"
    if read != (router.db_for_write(WorkflowRun) or "default"):
        # The fingerprint is checked where the run is written. Read from a replica, the tree
        # may be older than the primary's: the check would fail and the start read it again.
        return Compiled(workflow_to_spec(workflow), None)
    key = (read, workflow.pk)
    with _lock:
        entry = _entries.get(key)
        if entry is not None:
            _entries.move_to_end(key)
            return replace(entry, kept=True)
    nodes, fingerprint = load_fingerprinted(workflow.pk)
    entry = Compiled(workflow_to_spec(workflow, nodes), fingerprint)
    budget = int(get_config()["SPEC_CACHE_SIZE"])
    size = len(nodes)
    if fingerprint is not None and 0 < size <= budget:
        with _lock:
            if key in _entries:
                _kept_nodes -= _sizes.pop(key)
            _entries[key], _sizes[key] = entry, size
            _kept_nodes += size
            while _kept_nodes > budget:
                oldest, _entry = _entries.popitem(last=False)
                _kept_nodes -= _sizes.pop(oldest)
    return entry


def note_passed(workflow: Workflow, spec: canvas.Node, tasks: Mapping) -> None:
    """``spec``, kept for ``workflow``, passed the start's check against ``tasks`` (the
    registry's mapping): the next starts need not check it again while the registry gives that
    same mapping (``services.prepare_run``)."""
    key = (router.db_for_read(WorkflowNode) or "default", workflow.pk)
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry.spec is spec:
            _entries[key] = replace(entry, passed=tasks)


def forget(workflow_id: int | None = None) -> None:
    """Drop what is kept for one workflow (its tree changed), or for all."""
    global _kept_nodes
    with _lock:
        for key in [key for key in _entries if workflow_id in (None, key[1])]:
            del _entries[key]
            _kept_nodes -= _sizes.pop(key)


@receiver(setting_changed)
def _forget_on_settings(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TASK_ADMIN", "DATABASES"):
        forget()
