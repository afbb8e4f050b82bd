"""Buffer the worker's tracking events in process and write them in batches.

Writing each state change from inside the task's process costs a database round trip per event
(measured: one indexed UPDATE per event alone brings Celery to about 0.6x its speed). Instead,
the signal handlers only append an ``Event`` here (microseconds), and one thread per process
writes what has gathered with ``tracking.apply``: a few set-based statements per batch, not per
event. The thread wakes as soon as something is buffered, then waits ``FLUSH_INTERVAL`` seconds
between batches, so a quiet worker records at once and a busy one writes big batches.

The thread has its own database connection, which Celery's Django fixup (closing connections
around every task) does not touch. SQLite's "database is locked" and lost connections are
retried with a bound, keeping the events. Pool processes flush when they exit (billiard runs
``Finalize`` callbacks); the worker's main process on ``worker_shutdown``.

What can be lost: the events buffered in a process killed with SIGKILL (at most
``FLUSH_INTERVAL`` seconds of them, plus whatever could not be written while the database was
unreachable). The reconciler (``services.reconcile_run``) repairs such nodes from the result
backend. Outside a worker (eager mode, a shell) events are written at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, OperationalError, connections

from task_admin import tracking
from task_admin.conf import get_config

logger = logging.getLogger(__name__)

# How many times a batch is tried before its events are given up (the reconciler repairs
# them), and the most events kept while the database cannot be written.
MAX_TRIES = 8
MAX_BUFFERED = 200_000


# A process that has buffered nothing new for a while has finished its burst of work: what it
# holds is written then, so the end of a run is recorded without waiting for the interval.
# "A while" follows the process's own pace between tasks (the time from one task's end to the
# next one's), estimated as TCP estimates a round trip for its retransmission timeout: a
# moving average plus four times the average deviation from it, twice the average at least,
# and between MIN_IDLE and IDLE. Uneven gaps widen it, so a loaded process does not write at
# every pause a little longer than usual: each batch costs a fixed few statements. A pool
# process running a task every few milliseconds writes the end of its burst a few
# milliseconds after its last event (measured: a chord of 1,000 recorded finished 20-35 ms
# after its body's result, 55 ms with a fixed 50 ms wait); one with tens of milliseconds
# between tasks waits IDLE, and so does a task after IDLE without any (the estimate starts
# again from IDLE). tests/test_recorder.py counts the batches for random gaps against a
# fixed 50 ms wait.
IDLE = 0.05
MIN_IDLE = 0.005
# The events that end an execution of a task: the gaps between them are the process's pace.
_ENDS = frozenset({tracking.SUCCEEDED_EVENT, tracking.FAILED_EVENT, tracking.RETRIED,
                   tracking.REVOKED_EVENT})


class Recorder:
    def __init__(self, write: Callable[[list[tracking.Event]], object] = tracking.apply):
        self.write = write
        # Drops events that no longer matter just before a batch is written (see receivers).
        self.prune: Callable[[list[tracking.Event]], list[tracking.Event]] | None = None
        self.buffered = False  # True inside a worker: events wait for the thread
        self.age_factor = 1.0  # the worker's main process writes less often (see start_buffering)
        # The shortest quiet time that ends a burst (the main process's is IDLE: see
        # start_buffering).
        self.min_quiet = MIN_IDLE
        self._reset()

    def _reset(self) -> None:
        self._events: list[tracking.Event] = []
        self._first_at = self._last_at = 0.0
        # The pace between tasks' ends: its moving average and average deviation (see IDLE).
        self._last_end = 0.0
        self._pace, self._spread = IDLE, 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stopping = False
        self._tries = 0

    # -- the hot path: called by the signal handlers -------------------------------------------

    def add(self, event: tracking.Event) -> None:
        if not self.buffered:
            self.write([event])
            return
        if self._pid != os.getpid():  # forked after events were buffered: start afresh
            self._reset()
        now = time.monotonic()
        with self._lock:
            if len(self._events) >= MAX_BUFFERED:
                del self._events[: len(self._events) // 10]
                logger.warning("task_admin: tracking buffer full, oldest events dropped "
                               "(the reconciler repairs their nodes)")
            if not self._events:
                self._first_at = now
            self._last_at = now
            if event.kind in _ENDS:
                self._note_end(now)
            self._events.append(event)
        if self._thread is None:
            self._start()
        self._wake.set()

    def _note_end(self, now: float) -> None:
        gap, self._last_end = now - self._last_end, now
        if gap >= IDLE:  # a quiet spell: the pace is unknown again
            self._pace, self._spread = IDLE, 0.0
            return
        # RFC 6298's weights: the deviation with 1/4, then the average with 1/8.
        self._spread += (abs(gap - self._pace) - self._spread) / 4
        self._pace += (gap - self._pace) / 8

    def _quiet_time(self) -> float:
        """How long without events ends a burst, for this process now (see IDLE); called
        with the lock held."""
        # Twice the pace at least: with even gaps the deviation is nil, and a wait of one gap
        # would write at every task.
        estimate = max(2 * self._pace, self._pace + 4 * self._spread)
        return min(IDLE, max(self.min_quiet, estimate))

    # -- the writer thread -------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="task_admin-recorder", daemon=True
            )
            self._thread.start()

    def _due_in(self) -> float | None:
        """Seconds until the buffer should be written (0: now); None when it is empty."""
        with self._lock:
            if not self._events:
                return None
            first, last, quiet = self._first_at, self._last_at, self._quiet_time()
        now = time.monotonic()
        max_age = float(get_config()["FLUSH_INTERVAL"]) * self.age_factor
        return max(0.0, min(first + max_age, last + quiet) - now)

    def _run(self) -> None:
        global _writer_connection
        _writer_connection = connections["default"]
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            while (due := self._due_in()) is not None:
                if due > 0:
                    time.sleep(due)
                    continue
                if not self.flush():
                    time.sleep(min(0.05 * 2 ** self._tries, 5.0))

    def flush(self) -> bool:
        """Write what is buffered now; False when it must be tried again later."""
        with self._flushing:
            with self._lock:
                events, self._events = self._events, []
            if self.prune is not None:
                events = self.prune(events)
            if not events:
                return True
            tries = self._tries
            began = time.perf_counter()
            try:
                self.write(events)
                logger.debug("task_admin: %d tracking events written in %.1f ms",
                             len(events), 1000 * (time.perf_counter() - began))
            except (OperationalError, InterfaceError, DatabaseError) as exc:
                tries += 1
                # A lost connection is reopened on the next try; SQLite's lock is waited out.
                connection = connections["default"]
                if not connection.in_atomic_block:
                    connection.close()
                if tries >= MAX_TRIES:
                    self._tries = 0
                    logger.error("task_admin: %d tracking events not written after %d tries: "
                                 "%s (the reconciler repairs their nodes)",
                                 len(events), tries, exc)
                    return True
                self._tries = tries
                logger.warning("task_admin: writing %d tracking events failed (%s); "
                               "trying again", len(events), exc)
                with self._lock:
                    self._events[:0] = events
                return False
            except Exception:
                self._tries = 0
                logger.exception("task_admin: %d tracking events could not be written",
                                 len(events))
                return True
            self._tries = 0
            return True

    def flush_at_exit(self) -> None:
        """Write everything left (process shutdown); a bounded number of tries."""
        if self._pid != os.getpid():
            return
        self._stopping = True
        for _ in range(MAX_TRIES):
            if self.flush() and not self._events:
                break
            time.sleep(0.2)
        with contextlib.suppress(Exception):  # exiting anyway
            connections["default"].close()


recorder = Recorder()

# The writer thread's connection in this process: a forked child must not use it, and must not
# let its garbage collection close the parent's session (see ``_after_fork``).
_writer_connection = None
_orphans: list[object] = []


def _after_fork() -> None:
    global _writer_connection
    recorder._reset()  # the parent's buffer, locks and thread are not this process's
    wrapper, _writer_connection = _writer_connection, None
    raw = getattr(wrapper, "connection", None)
    if raw is not None:
        # Keep the inherited connection object alive for ever and close only our copy of its
        # socket: closing it properly would end the parent's session on the server.
        _orphans.append(raw)
        with contextlib.suppress(Exception):  # SQLite has no socket: nothing to do
            os.close(raw.fileno())
        wrapper.connection = None


def _before_fork() -> None:
    # Never fork while the writer thread is inside the database driver: a child forked then
    # could inherit a lock held by a thread that does not exist in it, and hang on first use.
    recorder._flushing.acquire()


def _after_fork_in_parent() -> None:
    recorder._flushing.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork
    )


def start_buffering(*, main_process: bool = False) -> None:
    """Called in worker processes: from now on events wait for the writer thread.

    The worker's main process sees "received" (and a lost pool process's failure, and
    revocations): nothing a run waits for, so it writes four times less often, and only after
    IDLE without events, which keeps its thread from competing with the consumer during a
    burst (and leaves time for its tasks to start: see ``receivers.still_waiting``).
    """
    recorder.buffered = True
    recorder.age_factor = 4.0 if main_process else 1.0
    recorder.min_quiet = IDLE if main_process else MIN_IDLE
    try:
        from billiard.util import Finalize

        # Pool processes end through billiard, which runs its finalizers, not atexit.
        Finalize(recorder, recorder.flush_at_exit, exitpriority=20)
    except ImportError:
        pass
