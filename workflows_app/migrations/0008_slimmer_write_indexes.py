"""Two indexes fewer on every write: Event.dedupe_key's uniqueness covers only the rows that
have one (receipts), and Workflow.account loses its own index, which the (account, -created_at)
index already serves. The account change only drops the index: Django's AlterField would also
drop and re-validate the foreign key, a scan of the whole table under an exclusive lock."""

import django.db.models.deletion
from django.db import migrations, models

ACCOUNT_INDEX = "workflows_app_workflow_account_id_5e0c46b8"


class Migration(migrations.Migration):
    dependencies = [
        ("workflows_app", "0007_step_unarmed_deadline_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="dedupe_key",
            field=models.CharField(blank=True, max_length=300, null=True),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.UniqueConstraint(
                condition=models.Q(("dedupe_key__isnull", False)),
                fields=("dedupe_key",),
                name="event_dedupe_key",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="workflow",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="workflows",
                        to="workflows_app.account",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {ACCOUNT_INDEX}",
                    f"CREATE INDEX IF NOT EXISTS {ACCOUNT_INDEX} "
                    "ON workflows_app_workflow (account_id)",
                ),
            ],
        ),
    ]
