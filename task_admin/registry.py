"""Which Celery tasks staff may invoke from the admin, with their signatures and docs.

This is the only module that decides which Celery app task_admin talks to (``get_app``); every
other function takes ``app=`` and falls back to it.
"""

from __future__ import annotations

import inspect
import sys
import threading
from dataclasses import dataclass
from fnmatch import fnmatchcase

from celery import Celery, Task
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from task_admin.conf import get_config


class NoCeleryApp(LookupError):
    """Raised when neither ``TASK_ADMIN["CELERY_APP"]`` nor a current Celery app is set up."""


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


def _load_tasks(app: Celery) -> None:
    # The web process never runs a worker's start-up, so autodiscovered task modules are
    # imported here, once per process and app.
    if id(app) in _loaded:
        return
    app.loader.import_default_modules()
    _loaded.add(id(app))


def clear_cache() -> None:
    """Forget the allowed tasks computed so far (settings changed, tasks registered)."""
    with _lock:
        _cache.clear()
        _signatures.clear()


def _reset(*, setting: str, **kwargs) -> None:
    if setting in {"TASK_ADMIN", "INSTALLED_APPS"}:
        clear_cache()


setting_changed.connect(_reset, dispatch_uid="task_admin.registry.reset")


def _is_third_party(module_name: str) -> bool:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None) or ""
    return "site-packages" in path or "dist-packages" in path


def is_allowed_name(name: str, module: str = "") -> bool:
    config = get_config()
    if any(fnmatchcase(name, pattern) for pattern in config["DENIED_TASKS"]):
        return False
    allowed = config["ALLOWED_TASKS"]
    if allowed is None:
        return not name.startswith("celery.") and not _is_third_party(module)
    return any(fnmatchcase(name, pattern) for pattern in allowed)


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
    _load_tasks(app)
    key = (id(app), len(app.tasks))
    infos = _cache.get(key)
    if infos is None:
        infos = _compute(app)
        with _lock:
            _cache[key] = infos
    return dict(infos)


def _compute(app: Celery) -> dict[str, TaskInfo]:
    infos = {}
    for name, task in sorted(app.tasks.items()):
        module = getattr(task.run, "__module__", "") or task.__module__
        if is_allowed_name(name, module):
            infos[name] = TaskInfo(
                name=name,
                module=module,
                signature=_signature_of(task),
                doc=_first_line(task.__doc__ or getattr(task.run, "__doc__", None)),
            )
    return infos


_signatures: dict[tuple[int, int], dict[str, inspect.Signature | None]] = {}


def signatures(app: Celery | None = None) -> dict[str, inspect.Signature | None]:
    app = app or get_app()
    _load_tasks(app)
    key = (id(app), len(app.tasks))
    cached = _cache.get(key) and _signatures.get(key)
    if cached is None:
        cached = {name: info.signature for name, info in allowed_tasks(app).items()}
        with _lock:
            _signatures[key] = cached
    return dict(cached)
