from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0001_provider_connections")]

    operations = [
        migrations.CreateModel(
            name="SandboxRevocation",
            fields=[
                (
                    "provider_message_id",
                    models.CharField(max_length=64, primary_key=True, serialize=False),
                ),
                ("outcome", models.CharField(max_length=16)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
