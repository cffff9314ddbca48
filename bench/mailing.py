"""Mailings at scale on PostgreSQL: preparation, rendering at send time, regular notifications.

    python bench/mailing.py [--members 1000000] [--render 20000] [--json] [--database-url URL]

Generates the members (COPY; every member has SMS consent, 60 % email consent), a target
audience holding all of them, and bonus lots (every member: a lot expiring within 60
days; one in five: a lot activating within 10 days). Then measures:

* ``prepare_msgs_per_s``: launching an SMS mailing to the whole audience and preparing
  it (reachability and control groups counted, one recipient row written per member to
  be messaged by ``INSERT ... SELECT``, the first 5,000 message rows written from them,
  the dispatcher's first tasks queued) — members prepared per second of the whole
  preparation; the rest of the message rows are written by the dispatcher as it sends;
* ``render_sms_per_s`` / ``render_email_per_s``: the prepared mailing's messages, claimed
  in batches of 1,000 as the dispatcher claims them, rendered at send time as it does
  (``rows_render``: contexts loaded per batch from the database, then the Jinja2
  sandbox), as a personalised SMS and as a personalised HTML email;
* ``regular_tasks_s``: the birthday, burnout and activation notifications run over all
  members (``regular_run``), messages queued and birthday bonuses accrued;
* ``peak_rss_mb``: the benchmark process's peak resident memory.

Data is kept between runs of the same size (``--regenerate`` to rebuild); messages are
deleted before each run.
"""

import argparse
import datetime as dt
import resource
import time

from _common import report, setup_django

SMS = "{{ first_name }}, double bonuses this weekend! Balance: {{ balance }}. {{ expiring_amount }} expire {{ expiring_date }}."
EMAIL_HTML = (
    "<html><body><h1>{{ salutation }}!</h1><p>Your balance is <b>{{ balance }}</b> bonuses.</p>"
    "{% if expiring_amount %}<p>{{ expiring_amount }} bonuses expire on {{ expiring_date }}.</p>{% endif %}"
    '<p><a href="https://shop.example/offers">Offers</a> · <a href="{{ view_online_url }}">View online</a>'
    ' · <a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


def generate(members: int) -> None:
    from django.db import connection

    from loyalty import demo

    demo.program_setup()
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE loyalty_member, loyalty_card, loyalty_consent, loyalty_consentchange, loyalty_memberevent, "
            "loyalty_bonusaccount, loyalty_bonusoperation, loyalty_bonuslot, loyalty_ledgerentry, "
            "loyalty_lotremainder, segments_audiencemember, communications_message CASCADE"
        )
    t0 = time.perf_counter()
    demo.members_load(demo.MemberPlan(count=members, seed=7, start_id=1))
    print(f"members: {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO loyalty_consent (member_id, channel, granted, changed_at, source) "
            "SELECT id, 'sms', true, now(), 'bench' FROM loyalty_member "
            "ON CONFLICT (member_id, channel) DO UPDATE SET granted = true"
        )
        cur.execute(
            """
            INSERT INTO loyalty_bonusaccount (member_id, currency_id, available, pending, created_at)
            SELECT id, (SELECT id FROM loyalty_currency WHERE is_default), 100 + id % 400,
                   CASE WHEN id % 5 = 0 THEN 50 ELSE 0 END, now()
            FROM loyalty_member
            """
        )
        # One operation per lot; lots with their remainders and entries (the ledger's shape).
        cur.execute(
            """
            CREATE TEMP TABLE bench_lots AS
            SELECT a.id AS account_id, a.available AS available, 0::numeric AS pending,
                   now() - interval '30 days' AS activates_at,
                   now() + (1 + a.member_id % 60) * interval '1 day' AS expires_at
            FROM loyalty_bonusaccount a
            UNION ALL
            SELECT a.id, 0, 50, now() + (1 + a.member_id % 10) * interval '1 day',
                   now() + (200 + a.member_id % 60) * interval '1 day'
            FROM loyalty_bonusaccount a WHERE a.pending > 0
            """
        )
        cur.execute("ALTER TABLE bench_lots ADD COLUMN n bigserial")
        cur.execute(
            """
            INSERT INTO loyalty_bonusoperation (kind, account_id, idempotency_key, amount, source_type,
                source_id, source_label, reason, created_at)
            SELECT 'accrual', account_id, 'bench:' || n, available + pending, 'import', '', 'bench', '', now()
            FROM bench_lots
            """
        )
        cur.execute(
            """
            INSERT INTO loyalty_bonuslot (account_id, operation_id, amount, activates_at, expires_at, created_at)
            SELECT l.account_id, o.id, l.available + l.pending, l.activates_at, l.expires_at, now()
            FROM bench_lots l JOIN loyalty_bonusoperation o ON o.idempotency_key = 'bench:' || l.n
            """
        )
        cur.execute(
            """
            INSERT INTO loyalty_lotremainder (lot_id, account_id, available, pending, activates_at, expires_at)
            SELECT id, account_id, CASE WHEN activates_at <= now() THEN amount ELSE 0 END,
                   CASE WHEN activates_at > now() THEN amount ELSE 0 END, activates_at, expires_at
            FROM loyalty_bonuslot
            """
        )
        cur.execute(
            """
            INSERT INTO loyalty_ledgerentry (operation_id, account_id, lot_id, kind, available_delta,
                pending_delta, created_at)
            SELECT operation_id, account_id, id, 'accrual',
                   CASE WHEN activates_at <= now() THEN amount ELSE 0 END,
                   CASE WHEN activates_at > now() THEN amount ELSE 0 END, now()
            FROM loyalty_bonuslot
            """
        )
    print(f"bonus lots: {time.perf_counter() - t0:.1f} s", flush=True)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")


def setup_program():
    from communications.models import MessageTemplate
    from gateways.models import Gateway
    from gateways.services import gateway_save
    from segments.models import TargetAudience

    for channel in ("sms", "email"):
        if not Gateway.objects.filter(channel=channel).exists():
            gateway_save(gateway=Gateway(name=f"bench {channel}", provider=f"file_{channel}"), config={})
    audience, _ = TargetAudience.objects.get_or_create(name="bench: everyone")
    sms, _ = MessageTemplate.objects.update_or_create(
        name="bench sms", defaults={"channel": "sms", "text": SMS}
    )
    email, _ = MessageTemplate.objects.update_or_create(
        name="bench email",
        defaults={
            "channel": "email",
            "subject": "{{ first_name }}, your bonuses",
            "preheader": "Balance {{ balance }}",
            "html": EMAIL_HTML,
            "text": "{{ salutation }}! Balance {{ balance }}.",
        },
    )
    return audience, sms, email


def fill_audience(audience) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DELETE FROM segments_audiencemember WHERE audience_id = %s", [audience.pk])
        cur.execute(
            "INSERT INTO segments_audiencemember (audience_id, member_id, added_at) "
            "SELECT %s, id, now() FROM loyalty_member",
            [audience.pk],
        )
        cur.execute("ANALYZE segments_audiencemember")


def clear_messages() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("TRUNCATE communications_message, communications_mailingrecipient CASCADE")


def measure_prepare(audience, template) -> dict:
    from communications import tasks
    from communications.models import Mailing, MailingStatus
    from communications.services.mailings import mailing_launch, mailing_prepare

    queued: list[int] = []
    tasks.dispatch.delay = queued.append  # the first chunks: recorded, no broker needed
    tasks.mailing_prepare.delay = lambda pk: None
    mailing = Mailing.objects.create(name="bench", channel="sms", template=template, audience=audience)
    t0 = time.perf_counter()
    mailing_launch(mailing=mailing)
    figures = mailing_prepare(mailing=mailing)
    seconds = time.perf_counter() - t0
    mailing.refresh_from_db()
    assert mailing.status == MailingStatus.SENDING, mailing.error
    return {
        "seconds": seconds,
        "written": figures["prepared"],
        "first_messages": figures["queued"],
        "tasks": len(queued),
    }


def claim_batch() -> list[dict]:
    """The prepared mailing's next 1,000 messages, written from its recipients and
    claimed the way the dispatcher does it before each batch (leased, in due order)."""
    from django.utils import timezone

    from communications.services.delivery import _claim
    from communications.services.mailings import mailings_release
    from gateways.models import Gateway

    gateway = Gateway.objects.get(channel="sms", name="bench sms")
    mailings_release(gateway=gateway, limit=1000)
    return _claim(gateway, 1000, timezone.now())[1]


def measure_render(template, count: int) -> float:
    """Claimed rows rendered at send time, a batch at a time as the dispatcher does it
    (contexts loaded per batch from the database, then the sandbox); the rows are given
    ``template``. Only the rendering is timed."""
    from django.utils import timezone

    from communications.services.rendering import rows_render

    now = timezone.now()
    rendered = 0
    elapsed = 0.0
    for _ in range(max(1, count // 1000)):
        rows = [
            {
                **r,
                "channel": template.channel,
                "content": {},
                "render": {"template": template.pk, "event": {}},
            }
            for r in claim_batch()
        ]
        t0 = time.perf_counter()
        ready, failed = rows_render(rows, now=now)
        elapsed += time.perf_counter() - t0
        assert not failed, failed
        rendered += len(ready)
    return rendered / elapsed


def measure_regular(sms, email) -> dict:
    from communications.models import RegularTask
    from communications.services.regular import regular_run

    for task in RegularTask.objects.all():
        task.enabled = True
        task.days_before = {"birthday": 0, "burnout": 7, "activation": 3}[task.kind]
        task.min_amount = 10
        task.channels = ["sms", "email"]
        if task.kind == "birthday":
            task.bonus_amount = 200
            task.bonus_lifetime_days = 30
        task.save()
        task.templates.set([sms, email])
    # Late in the day everywhere: every zone's send time has passed.
    now = dt.datetime.now(dt.UTC).replace(hour=20, minute=0)
    t0 = time.perf_counter()
    figures = regular_run(now=now)
    return {"seconds": time.perf_counter() - t0, "figures": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--render", type=int, default=20_000, help="messages rendered per channel")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--no-regular", action="store_true", help="skip the regular notifications")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/loyalty_bench_mailing")
    args = parser.parse_args()
    setup_django(args.database_url)

    from loyalty.models import Member

    if args.regenerate or Member.objects.count() != args.members:
        generate(args.members)
    audience, sms, email = setup_program()
    fill_audience(audience)
    clear_messages()

    prepare = measure_prepare(audience, sms)
    from config.runtime import startup_objects_freeze

    startup_objects_freeze()  # as a dispatch worker does when it starts (config/celery.py)
    measure_render(sms, 1000)  # warm-up: template compilation
    measure_render(email, 1000)
    render_sms = measure_render(sms, args.render)
    render_email = measure_render(email, args.render)  # members of its own: the next batches
    clear_messages()
    regular = None if args.no_regular else measure_regular(sms, email)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    figures = {
        "members": args.members,
        "prepare_s": round(prepare["seconds"], 3),
        "prepared_messages": prepare["written"],
        "prepare_msgs_per_s": round(prepare["written"] / prepare["seconds"], 1),
        "first_messages_written": prepare["first_messages"],
        "dispatch_tasks_queued": prepare["tasks"],
        "render_sms_per_s": round(render_sms, 1),
        "render_email_per_s": round(render_email, 1),
        "peak_rss_mb": round(peak, 1),
    }
    if regular is not None:
        figures["regular_tasks_s"] = round(regular["seconds"], 3)
        if not args.json:
            print("regular notifications:", regular["figures"])
    report(f"Mailings, {args.members:,} members (PostgreSQL)", figures, args.json)


if __name__ == "__main__":
    main()
