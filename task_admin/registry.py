"""Which Celery tasks staff may invoke from the admin, with their signatures and docs.

This is the only module that decides which Celery app task_admin talks to (``get_app``); every
other function takes ``app=`` and falls back to it.
"""

from __future__ import annotations

import inspect
import threading
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from types import MappingProxyType

from celery import Celery, Task
from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from kombu.exceptions import KombuError

from task_admin.conf import get_config


class NoCeleryApp(LookupError):
    """Raised when neither ``TASK_ADMIN["CELERY_APP"]`` nor a current Celery app is set up."""


# What can go wrong when talking to the broker, or finding the Celery app at all.
BROKER_ERRORS = (KombuError, OSError, NoCeleryApp)


@dataclass(frozen=True)
class TaskInfo:
    name: str
    module: str
    signature: inspect.Signature | None
    doc: str

    @property
    def signature_text(self) -> str:
        params = "(...)" if self.signature is None else str(self.signature)
        return f"{self.name.rsplit('.', 1)[-1]}{params}"


def get_app() -> Celery:
    path = get_config()["CELERY_APP"]
    if path:
        try:
            return import_string(path)
        except ImportError as exc:
            raise NoCeleryApp(
                f"TASK_ADMIN['CELERY_APP'] = {path!r} cannot be imported: {exc}"
            ) from exc
    from celery import _state

    app = _state.get_current_app()
    # Celery invents a "default" app when none was created; tasks sent through it go nowhere.
    if app.main == "default" and app.loader.__class__.__module__ == "celery.loaders.default":
        raise NoCeleryApp("No Celery app is configured (see TASK_ADMIN['CELERY_APP']).")
    return app


# Per process: the apps whose task modules were imported, and the allowed tasks computed for
# each app, keyed by (app, number of registered tasks) so a task registered later is seen.
# Importing the task modules makes Celery's Django fixup run Django's system checks, and
# ``inspect.signature`` is not free either: a run start must not pay for them every time.
_loaded: set[int] = set()
_cache: dict[tuple[int, int], dict[str, TaskInfo]] = {}
_lock = threading.Lock()
# Held while a thread imports the task modules: the others wait for it. Celery's autodiscovery
# returns at once, importing nothing, in a thread that calls it while another thread is in it
# (its _RACE_PROTECTION), so without the wait the first requests of a threaded server computed
# the allowed tasks from the few registered so far and refused the rest. Re-entrant: the
# import runs Django's system checks, which may ask the registry again in the same thread.
_loading = threading.RLock()
_depth = threading.local()
# How long a thread waits for another one's autodiscovery that did not go through here
# (django-celery-beat's admin imports the task modules too), then goes on without it.
AUTODISCOVERY_WAIT = 30.0


def load_tasks(app: Celery) -> None:
    """Import the task modules the app's autodiscovery names, once per process and app: the
    web process never runs a worker's start-up."""
    if id(app) in _loaded:
        return
    with _loading:
        if id(app) in _loaded:
            return
        outer = getattr(_depth, "value", 0)
        _depth.value = outer + 1
        try:
            app.loader.import_default_modules()
            if outer:
                return  # inside this thread's own import: the outer call finishes it
            if _autodiscovery_elsewhere():
                deadline = time.monotonic() + AUTODISCOVERY_WAIT
                while _autodiscovery_elsewhere() and time.monotonic() < deadline:
                    time.sleep(0.01)
                app.loader.import_default_modules()
            _loaded.add(id(app))
        finally:
            _depth.value = outer


def _autodiscovery_elsewhere() -> bool:
    # Called outside this thread's own import only: then it is another thread's.
    from celery.loaders import base

    return bool(getattr(base, "_RACE_PROTECTION", False))


def clear_cache() -> None:
    """Forget the allowed tasks computed so far (settings changed, tasks registered)."""
    with _lock:
        _cache.clear()
        _signatures.clear()
        _parameters.clear()


def _reset(*, setting: str, **kwargs) -> None:
    if setting in {"TASK_ADMIN", "INSTALLED_APPS"}:
        clear_cache()


setting_changed.connect(_reset, dispatch_uid="task_admin.registry.reset")


def _default_roots(app: Celery) -> tuple[str, ...]:
    """Module prefixes of "the project's own tasks": its installed apps and its Celery app.

    These are the modules Celery's ``autodiscover_tasks()`` reads, wherever they are
    installed: a project installed with ``pip install .`` lives in site-packages too. Django's
    own apps and the task_admin family are left out; DENIED_TASKS still applies on top.
    """
    roots = set(_app_roots())
    # The package holding the Celery app (mysite/celery.py -> "mysite"): debug_task and friends.
    for name in (getattr(app, "main", None), _module_of_app(app)):
        if name and name != "__main__":
            roots.add(name.split(".", 1)[0])
    return tuple(sorted(roots))


def _app_roots() -> tuple[str, ...]:
    """The names of the project's installed apps (Django's and the task_admin family's left out)."""
    from django.apps import apps as django_apps

    return tuple(sorted(
        config.name
        for config in django_apps.get_app_configs()
        if not config.name.startswith(_NOT_PROJECT_APPS)
    ))


_NOT_PROJECT_APPS = (
    "django.", "django_celery_beat", "django_celery_results", "import_export", "task_admin",
)


def _module_of_app(app: Celery) -> str:
    path = get_config()["CELERY_APP"]
    return path.rsplit(".", 1)[0] if path else ""


def _in_roots(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


# Celery's own tasks and task_admin's (a schedule's entry point, the replay stand-in) are never
# offered, whatever the settings say: running them by hand would bypass what they guard.
ALWAYS_DENIED = ("celery.*", "task_admin.*")


def _denied(name: str) -> bool:
    patterns = (*ALWAYS_DENIED, *get_config()["DENIED_TASKS"])
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def is_allowed_name(name: str, module: str = "", *, roots: tuple[str, ...] | None = None) -> bool:
    """Whether ``TASK_ADMIN`` lets staff invoke task ``name`` (defined in ``module``)."""
    config = get_config()
    if _denied(name):
        return False
    allowed = config["ALLOWED_TASKS"]
    if allowed is None:
        if roots is None:
            roots = _default_roots(get_app())
        return _in_roots(module, roots)
    return any(fnmatchcase(name, pattern) for pattern in allowed)


def refusal(name: str, app: Celery | None = None) -> str:
    """Why ``name`` may not be invoked, for the person who picked it: names the setting."""
    app = app or get_app()
    load_tasks(app)
    if name not in app.tasks:
        return _(
            "“%(task)s” is not a task that may be run from the admin: it is not registered "
            "with the Celery app. A task added or renamed since the web server and the workers "
            "started needs them restarted."
        ) % {"task": name}
    if _denied(name):
        return _(
            "“%(task)s” is not a task that may be run from the admin: TASK_ADMIN"
            "[\"DENIED_TASKS\"] refuses it (Celery's and task_admin's own tasks are always "
            "refused)."
        ) % {"task": name}
    if get_config()["ALLOWED_TASKS"] is None:
        return _(
            "“%(task)s” is not a task that may be run from the admin: it is not one of the "
            "project's own tasks. Add a pattern that matches it to TASK_ADMIN"
            "[\"ALLOWED_TASKS\"], then restart the web server and the workers."
        ) % {"task": name}
    return _(
        "“%(task)s” is not a task that may be run from the admin: no pattern of TASK_ADMIN"
        "[\"ALLOWED_TASKS\"] matches it. Add one, then restart the web server and the workers."
    ) % {"task": name}


def _signature_of(task: Task) -> inspect.Signature | None:
    # ``task.run`` is bound for ``bind=True`` tasks, so ``self`` is already left out.
    try:
        return inspect.signature(task.run)
    except (TypeError, ValueError):
        return None


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc).split("\n", 1)[0] if doc else ""


def allowed_tasks(app: Celery | None = None) -> dict[str, TaskInfo]:
    """The invocable tasks, sorted by name (computed once per process and app; a copy)."""
    app = app or get_app()
    load_tasks(app)
    key = (id(app), len(app.tasks))
    infos = _cache.get(key)
    if infos is None:
        infos = _compute(app)
        with _lock:
            _cache[key] = infos
    return dict(infos)


def _compute(app: Celery) -> dict[str, TaskInfo]:
    roots = _default_roots(app) if get_config()["ALLOWED_TASKS"] is None else ()
    infos = {}
    for name, task in sorted(app.tasks.items()):
        module = getattr(task.run, "__module__", "") or task.__module__
        if is_allowed_name(name, module, roots=roots):
            infos[name] = TaskInfo(
                name=name,
                module=module,
                signature=_signature_of(task),
                doc=_first_line(task.__doc__ or getattr(task.run, "__doc__", None)),
            )
    return infos


def installed_app_tasks(app: Celery | None = None) -> list[str]:
    """The registered tasks defined in the project's installed apps, sorted (for W003)."""
    app = app or get_app()
    load_tasks(app)
    roots = _app_roots()
    return sorted(
        name for name, task in app.tasks.items()
        if not _denied(name)
        and _in_roots(getattr(task.run, "__module__", "") or task.__module__, roots)
    )


def task_signature(name: str, app: Celery | None = None) -> inspect.Signature | None:
    """The signature of any registered task, allowed or not (None when unknown)."""
    app = app or get_app()
    load_tasks(app)
    task = app.tasks.get(name)
    return None if task is None else _signature_of(task)


def registered_tasks(app: Celery | None = None) -> list[str]:
    """Every task name the app knows except Celery's and task_admin's own, sorted."""
    app = app or get_app()
    load_tasks(app)
    return sorted(
        name for name in app.tasks if not any(fnmatchcase(name, p) for p in ALWAYS_DENIED)
    )


_signatures: dict[tuple[int, int], Mapping[str, inspect.Signature | None]] = {}


def signatures(app: Celery | None = None) -> Mapping[str, inspect.Signature | None]:
    """Each invocable task's signature (None when it cannot be read), read-only: every start
    checks against it, and must not pay for a copy. The same mapping while the settings, the
    app and its number of tasks are (``services.prepare_run`` relies on it)."""
    app = app or get_app()
    load_tasks(app)
    key = (id(app), len(app.tasks))
    cached = _signatures.get(key) if key in _cache else None
    if cached is None:
        cached = MappingProxyType(
            {name: info.signature for name, info in allowed_tasks(app).items()})
        with _lock:
            _signatures[key] = cached
    return cached


_parameters: dict[tuple[int, int], dict[str, dict]] = {}


def parameters(app: Celery | None = None) -> dict[str, dict]:
    """Each invocable task's parameters as the argument forms show them (``arguments``)."""
    from task_admin import arguments

    app = app or get_app()
    load_tasks(app)
    key = (id(app), len(app.tasks))
    # Valid while allowed_tasks' own cache is (cleared with it on a settings change).
    cached = _parameters.get(key) if key in _cache else None
    if cached is not None:
        return cached
    out = {}
    for name, info in allowed_tasks(app).items():
        task = app.tasks[name]
        try:
            # Resolves ``from __future__ import annotations`` text where the names exist.
            hints = typing.get_type_hints(task.run)
        except Exception:  # any annotation that cannot be resolved: read the text instead
            hints = None
        doc = getattr(task.run, "__doc__", None) or task.__doc__
        out[name] = {**arguments.describe(info.signature, doc, hints), "doc": info.doc,
                     "call": info.signature_text}
    with _lock:
        _parameters[key] = out
    return out
