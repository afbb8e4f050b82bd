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
        from django.db.models.signals import post_migrate

        from task_admin import checks, periodic, receivers

        checks.register()
        receivers.connect()
        post_migrate.connect(periodic.install, sender=self, dispatch_uid="task_admin.periodic")
