"""Seed the roll-up of the offer list's figures: every five minutes it adds the offer
applications made since the last run (editable in the admin under Periodic tasks; the
first run counts everything made before)."""

from django.db import migrations


def forwards(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    schedule, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name="Offer reach roll-up",
        defaults={"task": "offers.tasks.refresh_offer_reach", "interval": schedule},
    )


def backwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="offers.tasks.refresh_offer_reach").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("offers", "0008_reach"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
