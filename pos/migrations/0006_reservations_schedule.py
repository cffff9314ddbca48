"""Seed the release of lapsed bonus reservations every five minutes (editable in the
admin under Periodic tasks)."""

from django.db import migrations


def forwards(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    schedule, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name="Lapsed bonus reservations release",
        defaults={"task": "pos.tasks.release_lapsed_reservations", "interval": schedule},
    )


def backwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="pos.tasks.release_lapsed_reservations").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("pos", "0005_idempotency_body_lz4"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
