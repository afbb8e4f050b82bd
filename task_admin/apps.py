from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaskAdminConfig(AppConfig):
    name = "task_admin"
    label = "task_admin"
    verbose_name = _("Celery workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at module level, so that importing the app never pulls in Celery
        # signal wiring before Django's registry is ready.
        # ``tasks`` registers the app's shared tasks with every Celery app, so services read
        # the replay task's signature from the registry instead of importing an entry point.
        from task_admin import (
            alerting,
            checks,
            periodic,
            receivers,
            tasks,  # noqa: F401
            validation,
        )
        from task_admin.models.invocations import add_sendability_check

        # The models call the checks that live above them through this hook (no import up).
        add_sendability_check(validation.validate_invocation)
        checks.register()
        receivers.connect()
        alerting.connect()
        periodic.connect(self)
