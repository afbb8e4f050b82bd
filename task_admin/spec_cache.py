"""Compiled workflows kept per process, used only while the database proves them current.

A start used to read the workflow's tree (a round trip, and model instances for every node)
and compile it every time, though most workflows are started again and again unchanged. Here
each process keeps the spec it compiled, with the ``compile.Fingerprint`` of the rows it was
compiled from. A start does not read the tree: its one ``INSERT`` carries the fingerprint as
its condition (``models.new_runs.insert_run(only_if=...)``), checked by PostgreSQL in the
statement's own snapshot, so a run is recorded only from a tree that is still what it was. If
anything changed (an edit in the admin, an import, ``QuerySet.update``, raw SQL: every write
gives a row a new xmin), the insert writes nothing, the entry is dropped and the start compiles
the tree again (``services.run_prepared``).

Only PostgreSQL fingerprints (SQLite is in process: reading the tree costs no round trip), and
not a tree that reuses other workflows. Cached specs are immutable (frozen dataclasses), so
threads share them. ``TASK_ADMIN["SPEC_CACHE_SIZE"]`` workflows are kept per process (0 turns
the cache off); a change of ``TASK_ADMIN`` empties it (``MAX_DEPTH`` shapes a compile).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.core.signals import setting_changed
from django.db import router
from django.dispatch import receiver

from task_admin import canvas
from task_admin.compile import Fingerprint, load_fingerprinted, workflow_to_spec
from task_admin.conf import get_config
from task_admin.models import Workflow, WorkflowNode


@dataclass(frozen=True)
class Compiled:
    """A workflow's spec, and the condition under which it is still the stored tree's (None:
    no condition can say so; the spec was read just now)."""

    spec: canvas.Node
    current_if: Fingerprint | None


_entries: OrderedDict[tuple[str, int], Compiled] = OrderedDict()
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
    key = (router.db_for_read(WorkflowNode) or "default", workflow.pk)
    with _lock:
        entry = _entries.get(key)
        if entry is not None:
            _entries.move_to_end(key)
            return entry
    nodes, fingerprint = load_fingerprinted(workflow.pk)
    entry = Compiled(workflow_to_spec(workflow, nodes), fingerprint)
    size = int(get_config()["SPEC_CACHE_SIZE"])
    if fingerprint is not None and size > 0:
        with _lock:
            _entries[key] = entry
            while len(_entries) > size:
                _entries.popitem(last=False)
    return entry


def forget(workflow_id: int | None = None) -> None:
    """Drop what is kept for one workflow (its tree changed), or for all."""
    with _lock:
        if workflow_id is None:
            _entries.clear()
            return
        for key in [key for key in _entries if key[1] == workflow_id]:
            del _entries[key]


@receiver(setting_changed)
def _forget_on_settings(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TASK_ADMIN", "DATABASES"):
        forget()
