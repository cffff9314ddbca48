from django.db import migrations


def forwards(apps, schema_editor):
    from loyalty.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    """The contact-center operator reads partners and payment methods, which the point of
    sale and receipt pages link to. After every app's latest migration, so the sync sees
    all of their models."""

    dependencies = [
        ("loyalty", "0011_field_labels"),
        ("segments", "0007_field_labels"),
        ("gateways", "0002_field_labels"),
        ("communications", "0008_field_labels"),
        ("offers", "0007_field_labels"),
        ("pos", "0005_idempotency_body_lz4"),
        ("portal", "0004_roles_designer"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
