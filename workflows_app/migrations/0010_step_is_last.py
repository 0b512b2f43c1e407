"""``Step.is_last``: a stored fact instead of one derived from ``condition_status is None``.

Existing rows keep the meaning they had: the step without a condition is the last."""

from django.db import migrations, models


def mark_last_steps(apps, schema_editor):
    Step = apps.get_model("workflows_app", "Step")
    Step.objects.filter(condition_status__isnull=True).update(is_last=True)


class Migration(migrations.Migration):
    dependencies = [("workflows_app", "0009_time_ordered_keys")]

    operations = [
        migrations.AddField(
            model_name="step",
            name="is_last",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_last_steps, migrations.RunPython.noop),
    ]
