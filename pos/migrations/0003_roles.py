from django.db import migrations


def forwards(apps, schema_editor):
    from loyalty.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [("pos", "0002_purge_schedule")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
