from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0002_sandbox_revocations")]

    operations = [
        migrations.CreateModel(
            name="ConnectionRate",
            fields=[
                ("key", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("state", models.CharField(blank=True, default="", max_length=200)),
                ("paused_until_us", models.BigIntegerField(default=0)),
                ("slowed_until_us", models.BigIntegerField(default=0)),
                ("version", models.BigIntegerField(default=0)),
            ],
        ),
    ]
