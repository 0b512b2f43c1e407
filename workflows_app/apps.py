from django.apps import AppConfig


class WorkflowsAppConfig(AppConfig):
    name = "workflows_app"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # The one place where the domain tells the provider edge who consumes receipts.
        from channels_app import receipts

        from .services.receipts import receipts_apply

        receipts.register_handler(receipts_apply)
