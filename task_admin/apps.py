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
        from task_admin import alerting, checks, periodic, receivers

        checks.register()
        receivers.connect()
        alerting.connect()
        periodic.connect(self)
