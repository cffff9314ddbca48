"""Seed the release of lapsed bonus reservations every five minutes (editable in the
admin under Periodic tasks)."""

from django.db import migrations

from loyalty.migration_ops import interval_task_seeder

forwards, backwards = interval_task_seeder(name="Lapsed bonus reservations release", task="pos.tasks.release_lapsed_reservations", every=5)


class Migration(migrations.Migration):
    dependencies = [
        ("pos", "0005_idempotency_body_lz4"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
