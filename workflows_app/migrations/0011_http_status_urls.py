"""Status and inbound URLs are http(s) URLs, checked when stored (issue 14.8)."""

from django.db import migrations, models

import workflows_app.models


class Migration(migrations.Migration):
    dependencies = [
        ("workflows_app", "0010_step_is_last"),
    ]

    operations = [
        migrations.AlterField(
            model_name="account",
            name="status_url",
            field=models.URLField(
                blank=True,
                default="",
                max_length=2000,
                validators=[workflows_app.models.validate_http_url],
            ),
        ),
        migrations.AlterField(
            model_name="application",
            name="inbound_url",
            field=models.URLField(
                blank=True,
                default="",
                max_length=2000,
                validators=[workflows_app.models.validate_http_url],
            ),
        ),
        migrations.AlterField(
            model_name="application",
            name="status_url",
            field=models.URLField(
                blank=True,
                default="",
                max_length=2000,
                validators=[workflows_app.models.validate_http_url],
            ),
        ),
    ]
