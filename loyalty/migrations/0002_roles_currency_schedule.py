"""Seed what every program needs: the role groups, the default bonus currency and the
nightly activation/expiry schedule (editable in the admin under Periodic tasks)."""

from django.db import migrations


def forwards(apps, schema_editor):
    from loyalty.roles import roles_sync

    roles_sync(apps)
    Currency = apps.get_model("loyalty", "Currency")
    if not Currency.objects.filter(is_default=True).exists():
        Currency.objects.get_or_create(code="bonus", defaults={"name": "Bonus points", "is_default": True})
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, hour, minute in [
        ("Bonus activation", "loyalty.tasks.activate_bonuses", "*", "*/15"),
        ("Bonus expiry", "loyalty.tasks.expire_bonuses", "0", "5"),
    ]:
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*",
            timezone="UTC",
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": schedule})


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
