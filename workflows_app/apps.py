from django.apps import AppConfig


class WorkflowsAppConfig(AppConfig):
    name = "workflows_app"
    verbose_name = "Workflows"

    def ready(self) -> None:
        from channels_app import receipts

        # Imported before any connection opens: it gives each SQLite connection the
        # clock_timestamp() function when the connection is created.
        from .services import clock  # noqa: F401
        from .services.receipts import receipts_apply

        # The one place where the domain tells the provider edge who consumes receipts.
        receipts.register_handler(receipts_apply)
