"""Seed the roll-up of the offer list's figures: every five minutes it adds the offer
applications made since the last run (editable in the admin under Periodic tasks; the
first run counts everything made before)."""

from django.db import migrations

from loyalty.migration_ops import interval_task_seeder

forwards, backwards = interval_task_seeder(name="Offer reach roll-up", task="offers.tasks.refresh_offer_reach", every=5)


class Migration(migrations.Migration):
    dependencies = [
        ("offers", "0008_reach"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
