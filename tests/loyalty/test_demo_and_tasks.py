import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.db.models import Sum
from django.utils import timezone

from loyalty.events import event_types
from loyalty.models import (
    BonusAccount,
    Card,
    LedgerEntry,
    Member,
    MemberEvent,
    PointOfSale,
    Receipt,
)
from loyalty.services import ledger


@pytest.mark.parametrize("event_type", list(event_types), ids=lambda e: e.key)
def test_every_catalog_event_has_a_label_and_a_group(event_type):
    assert str(event_type.label) and event_type.group


def test_seed_demo_builds_a_believable_program_deterministically(db):
    out = StringIO()
    call_command("seed_demo", "--members", "60", "--seed", "5", stdout=out)
    assert Member.objects.count() == 60
    formats = {p.attributes.get("CustomTradeFormat") for p in PointOfSale.objects.filter(kind="offline")}
    assert "Hypermarket" in formats and len(formats) >= 3
    assert PointOfSale.objects.filter(kind="online_store").exists()
    assert PointOfSale.objects.filter(kind="mobile_app").exists()
    assert len({m.time_zone for m in Member.objects.all()}) >= 3
    assert Card.objects.count() == 60
    assert Receipt.objects.exists()
    # nothing in the demo's history lies in the future
    moment = timezone.now()
    assert not MemberEvent.objects.filter(occurred_at__gt=moment).exists()
    assert not Receipt.objects.filter(purchased_at__gt=moment).exists()
    # every account equals its entries
    for account in BonusAccount.objects.all():
        total = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("available_delta"))["s"] or 0
        assert account.available == ledger.points(total)
    # the same seed gives the same members
    first = list(Member.objects.order_by("pk").values_list("last_name", "phone", "city")[:10])
    call_command("seed_demo", "--if-empty", stdout=out)
    assert "left as it is" in out.getvalue()
    assert Member.objects.count() == 60
    assert first == list(Member.objects.order_by("pk").values_list("last_name", "phone", "city")[:10])


def test_activation_and_expiry_commands(db, account):
    import datetime as dt

    from django.utils import timezone

    past = timezone.now() - dt.timedelta(days=30)
    ledger.bonus_accrue(
        account=account,
        amount=10,
        source=ledger.Source(type="offer"),
        at=past,
        activates_at=past + dt.timedelta(days=1),
    )
    ledger.bonus_accrue(
        account=account,
        amount=5,
        source=ledger.Source(type="offer"),
        at=past,
        expires_at=past + dt.timedelta(days=2),
    )
    out = StringIO()
    call_command("activate_bonuses", stdout=out)
    call_command("expire_bonuses", stdout=out)
    assert "Activated 1 lot" in out.getvalue() and "Expired 1 lot" in out.getvalue()
    account.refresh_from_db()
    assert (account.available, account.pending) == (10, 0)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_runs_the_nightly_tasks(account, settings, tmp_path):
    """Starts a worker thread on the configured broker (Redis in CI, the filesystem
    transport by default) and sends it the activation task through the broker."""
    import datetime as dt

    from celery.contrib.testing.worker import start_worker
    from django.utils import timezone

    from config.celery import app
    from loyalty.tasks import activate_bonuses

    if "filesystem" in app.conf.broker_url:
        folder = tmp_path / "broker"
        folder.mkdir()
        app.conf.broker_transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder),
            "store_processed": False,
        }
    past = timezone.now() - dt.timedelta(days=3)
    ledger.bonus_accrue(
        account=account,
        amount=Decimal(42),
        source=ledger.Source(type="offer"),
        at=past,
        activates_at=past + dt.timedelta(days=1),
    )
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=30):
        # Sent while the worker polls, as the web process does.
        activate_bonuses.delay()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                account.refresh_from_db()
            except OperationalError:
                # SQLite's shared-cache test database locks the table while the
                # worker's thread writes it; read again after the write.
                time.sleep(0.2)
                continue
            if account.available == 42:
                break
            time.sleep(0.2)
    assert account.available == 42 and account.pending == 0


@pytest.mark.parametrize("member_id", [1, 7, 42, 123456, 5_000_001])
def test_demo_card_numbers_in_sql_match_the_python_reference(db, member_id):
    from django.db import connection

    from loyalty.demo import card_number_for, card_number_sql
    from loyalty.services.cards import card_number_valid

    with connection.cursor() as cur:
        cur.execute(f"SELECT {card_number_sql('x')} FROM (SELECT %s AS x) t", [member_id])
        number = cur.fetchone()[0]
    assert number == card_number_for(member_id)
    assert card_number_valid(number)


def test_operators_commands_speak_the_programs_language(db):
    """Management commands answer in the language the program is set to (LANGUAGE_CODE)."""
    from django.core.management import CommandError
    from django.utils import translation

    out = StringIO()
    with translation.override("ru"):
        call_command("activate_bonuses", stdout=out)
        call_command("sync_roles", stdout=out)
        with pytest.raises(CommandError, match="Сегмент 999999 не найден"):
            call_command("refresh_segments", "999999", stdout=out)
    assert "Активировано 0 партий." in out.getvalue()
    assert " прав" in out.getvalue() and "permission" not in out.getvalue()
