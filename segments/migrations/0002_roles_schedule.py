from django.db import migrations


def forwards(apps, schema_editor):
    from loyalty.roles import roles_sync

    roles_sync(apps)
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, hour, minute in [
        ("Segment snapshots", "segments.tasks.refresh_segments", "*", "20"),
        ("RFM recompute", "segments.tasks.recompute_rfm", "2", "30"),
    ]:
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": schedule})


class Migration(migrations.Migration):
    dependencies = [("segments", "0001_initial"), ("loyalty", "0002_roles_currency_schedule")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
