"""Offer actions: what each one adds to the result, how its parameters are validated,
and the seed's worked offers carried out through the real purchase and event flows."""

import datetime as dt
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from communications.models import Message, Origin
from communications.services.delivery import dispatch_batch
from gateways.models import Gateway
from gateways.services import gateway_save, providers_close
from loyalty.models import BonusAccount, BonusLot, BonusOperation, Currency, Status, StatusChange
from loyalty.services import ledger
from loyalty.services.events import event_record
from loyalty.services.members import consent_set
from loyalty.services.receipts import PaymentInput
from offers.catalog import entry_validate, offer_actions
from offers.engine import (
    Accrual,
    CompiledOffer,
    CompiledRule,
    Context,
    Limits,
    Line,
    MemberInfo,
    evaluate,
)
from offers.models import Counter, CounterValue, Offer
from offers.services import event_offers_run, offer_save, purchase_calculate, purchase_confirm
from tests import factories
from tests.offers.conftest import NOW, lines

D = Decimal


# --- helpers ----------------------------------------------------------------------------
def action(key: str, **params) -> dict:
    return {"key": key, "params": params}


def compiled(*actions: dict, offer_id: int = 1, name: str = "Offer") -> CompiledOffer:
    return CompiledOffer(
        id=offer_id,
        name=name,
        event="discount_calculated",
        priority=100,
        stop_further=False,
        starts_at=None,
        ends_at=None,
        audience_id=None,
        rules=[CompiledRule(filters=[], actions=[offer_actions.get(a["key"])(a["params"]) for a in actions])],
    )


def receipt(*items, member: MemberInfo | None = None) -> Context:
    return Context(
        event="discount_calculated",
        now=NOW,
        local_now=NOW,
        lines=[
            Line(index=i, sku=sku, quantity=D(q), price=D(p), min_price=D(floor))
            for i, (sku, q, p, *rest) in enumerate(items)
            for floor in [rest[0] if rest else "0"]
        ],
        member=member,
    )


def discounts(ctx: Context) -> list[Decimal]:
    return [ln.discount for ln in ctx.lines]


def refused(key: str, **params) -> dict:
    with pytest.raises(ValidationError) as caught:
        entry_validate(offer_actions, action(key, **params), "a")
    return caught.value.message_dict


def balance(member, currency: str | None = None) -> tuple[Decimal, Decimal]:
    """(available, pending) of the member's account in ``currency`` (the default one)."""
    accounts = BonusAccount.objects.filter(member=member)
    if currency:
        accounts = accounts.filter(currency__code=currency)
    else:
        accounts = accounts.filter(currency__is_default=True)
    account = accounts.first()
    return (account.available, account.pending) if account else (D("0"), D("0"))


@pytest.fixture
def member(db):
    member = factories.MemberFactory(email="anna@example.com", email_status="valid")
    for channel in ("sms", "email", "viber", "push", "social"):
        consent_set(member=member, channel=channel, granted=True, source="test")
    return member


@pytest.fixture
def statuses(db):
    return {
        code: Status.objects.create(code=code, name=code.title(), rank=rank)
        for code, rank in (("silver", 1), ("gold", 2), ("platinum", 3))
    }


@pytest.fixture
def file_sms(db):
    gateway = gateway_save(gateway=Gateway(name="Outbox SMS", provider="file_sms"), config={})
    yield gateway
    providers_close()


@pytest.fixture
def dispatches(monkeypatch):
    """Dispatch tasks started after commit, recorded instead of sent to the broker."""
    from communications import tasks

    started: list[int] = []
    monkeypatch.setattr(tasks.dispatch, "delay", started.append)
    return started


# --- discount -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        ("kopeck", ["33.33", "15.50"]),
        ("ruble_down", ["33", "15"]),
        ("ruble_up", ["34", "16"]),
        ("ruble_half", ["33", "16"]),
    ],
)
def test_a_percentage_discount_on_each_line_is_rounded_by_its_rule(rounding, expected):
    # given 10% of 333.33 and of 2 × 77.50
    ctx = receipt(("A", 1, "333.33"), ("B", 2, "77.50"))
    # when
    result = evaluate(ctx, [compiled(action("discount", kind="percent", value="10", rounding=rounding))])
    # then
    assert discounts(ctx) == [D(x) for x in expected]
    (effect,) = result.effects
    assert effect.action == "discount" and effect.amount == sum(D(x) for x in expected)
    assert effect.lines == [0, 1]


def test_a_fixed_discount_on_lines_is_per_unit():
    ctx = receipt(("COFFEE", 2, 500), ("BREAD", 1, 50))
    evaluate(ctx, [compiled(action("discount", kind="fixed", value="30"))])
    assert discounts(ctx) == [D("60.00"), D("30.00")]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([("A", 1, 300), ("B", 1, 100)], ["75.00", "25.00"]),
        ([("A", 1, 100), ("B", 1, 100), ("C", 1, 100)], ["33.33", "33.33", "33.34"]),
    ],
)
def test_a_fixed_discount_on_the_receipt_is_spread_in_proportion(items, expected):
    # given
    ctx = receipt(*items)
    # when
    result = evaluate(ctx, [compiled(action("discount", kind="fixed", value="100", target="receipt"))])
    # then the last line takes what rounding left over
    assert discounts(ctx) == [D(x) for x in expected]
    assert result.discount_total() == D("100")


def test_a_fixed_discount_larger_than_the_receipt_takes_each_line_up_to_its_cap():
    ctx = receipt(("A", 1, 30), ("B", 1, 10))
    action_ = action("discount", kind="fixed", value="100", target="receipt")
    evaluate(ctx, [compiled(action_)], Limits(max_line_discount_share=D("1")))
    assert discounts(ctx) == [D("30.00"), D("10.00")]
    ctx = receipt(("A", 1, 30), ("B", 1, 10))
    evaluate(ctx, [compiled(action_)])  # the program's cap: 90 % of a line
    assert discounts(ctx) == [D("27.00"), D("9.00")]


_cents = st.integers(min_value=1, max_value=10_000_000).map(lambda c: D(c).scaleb(-2))
_quantities = st.sampled_from(["1", "2", "3", "0.5", "1.250", "12"])


@hsettings(max_examples=200, deadline=None)
@given(
    prices=st.lists(st.tuples(_quantities, _cents), min_size=1, max_size=12),
    percent=st.integers(min_value=1, max_value=10_000).map(lambda h: D(h).scaleb(-2)),
    fixed=_cents,
)
@example(prices=[("1", D("0.01"))] * 3, percent=D("50"), fixed=D("0.02"))  # shares round to nothing
@example(prices=[("1", D("30")), ("1", D("10"))], percent=D("100"), fixed=D("100"))  # more than the receipt
def test_the_engines_whole_kopecks_equal_the_decimal_definitions(prices, percent, fixed):
    """The engine counts discounts in kopecks; what it takes equals the rule written in
    decimals: a percentage of each line rounded half up, and a fixed amount (at most
    what the lines cost) spread in proportion, each share rounded down and the kopecks
    that leaves given one each to rounded shares from the last line back."""
    no_cap = Limits(max_line_discount_share=D("1"))
    # a percentage of each line
    ctx = receipt(*[("S", q, p) for q, p in prices])
    evaluate(ctx, [compiled(action("discount", kind="percent", value=str(percent)))], no_cap)
    assert discounts(ctx) == [
        (ln.amount * percent / 100).quantize(D("0.01"), ROUND_HALF_UP) for ln in ctx.lines
    ]
    # a fixed amount spread over the receipt
    ctx = receipt(*[("S", q, p) for q, p in prices])
    evaluate(ctx, [compiled(action("discount", kind="fixed", value=str(fixed), target="receipt"))], no_cap)
    base = sum(ln.amount for ln in ctx.lines)
    spread = min(fixed, base)
    exact = [spread * ln.amount / base if base else ln.amount for ln in ctx.lines]
    expected = [share.quantize(D("0.01"), ROUND_DOWN) for share in exact]
    short = spread - sum(expected)
    for i in reversed(range(len(expected))):
        if short and expected[i] != exact[i]:
            expected[i] += D("0.01")
            short -= D("0.01")
    assert discounts(ctx) == expected
    assert sum(discounts(ctx)) == spread
    assert ctx.total == base - spread


def test_a_discount_works_only_on_the_lines_its_filters_chose():
    # given
    ctx = receipt(("COFFEE", 1, 500), ("BREAD", 1, 50))
    offer = compiled(action("discount", kind="percent", value="10"))
    (discount,) = offer.rules[0].actions
    result = evaluate(ctx, [])
    # when
    discount.apply(ctx, result, [ctx.lines[0]], offer, 0, Limits())
    # then
    assert discounts(ctx) == [D("50.00"), D("0")]


def test_a_discount_never_brings_a_unit_below_the_minimum_price():
    # given 50% off 2 × 100, the offer's floor 80 a unit, a product floor of 90 a unit
    ctx = receipt(("A", 2, 100), ("B", 2, 100, "90"))
    # when
    evaluate(ctx, [compiled(action("discount", kind="percent", value="50", min_line_price="80"))])
    # then
    assert discounts(ctx) == [D("40.00"), D("20.00")]


def test_a_discount_is_capped_at_the_programs_share_of_a_line():
    ctx = receipt(("A", 1, 200))
    evaluate(ctx, [compiled(action("discount", kind="percent", value="100"))], Limits())
    assert discounts(ctx) == [D("180.00")]


def test_a_second_percentage_is_taken_from_what_is_left_to_pay():
    ctx = receipt(("A", 1, 100))
    evaluate(
        ctx,
        [
            compiled(action("discount", kind="percent", value="10"), offer_id=1),
            compiled(action("discount", kind="percent", value="10"), offer_id=2),
        ],
    )
    assert discounts(ctx) == [D("19.00")]


def test_a_percentage_above_one_hundred_is_refused(db):
    errors = refused("discount", kind="percent", value="120")
    assert list(errors) == ["a.value"]


# --- bonus points ------------------------------------------------------------------------
def test_a_percentage_bonus_is_of_what_the_lines_cost_after_discounts_rounded_down():
    # given 3% of 333.33 is 9.9999; the second receipt has 10% off first
    plain = receipt(("A", 1, "333.33"))
    discounted = receipt(("A", 1, "333.33"))
    bonus = action("bonus", kind="percent", value="3")
    # when
    first = evaluate(plain, [compiled(bonus)])
    second = evaluate(
        discounted,
        [compiled(action("discount", kind="percent", value="10"), offer_id=1), compiled(bonus, offer_id=2)],
    )
    # then
    assert first.bonus_total() == D("9.99")
    assert second.bonus_total() == D("9.00")  # 3% of 300.00


@pytest.mark.parametrize(("per", "expected"), [("receipt", "10.00"), ("line", "35.00")])
def test_a_fixed_bonus_counts_once_per_receipt_or_per_unit(per, expected):
    ctx = receipt(("A", 2, 100), ("B", "1.5", 40))
    result = evaluate(ctx, [compiled(action("bonus", kind="fixed", value="10", per=per))])
    assert result.bonus_total() == D(expected)


def test_a_bonus_carries_its_currency_lifetime_and_delay():
    ctx = receipt(("A", 1, 100))
    result = evaluate(
        ctx,
        [
            compiled(
                action("bonus", kind="fixed", value="100", currency="miles", lifetime_days=30, delay_days=14),
                offer_id=7,
            )
        ],
    )
    assert result.accruals == [Accrual(7, D("100.00"), "miles", 30, 14)]
    assert result.effects[0].currency == "miles"


def test_an_unknown_bonus_currency_is_refused(db):
    errors = refused("bonus", kind="fixed", value="10", currency="nope")
    assert "nope" in errors["a"][0]


def test_a_delayed_bonus_in_another_currency_is_pending_in_the_ledger(shop, make_offer, member, now):
    # given
    Currency.objects.create(code="miles", name="Miles")
    make_offer(
        event="bonus_calculated",
        rules=[
            {
                "actions": [
                    action(
                        "bonus", kind="fixed", value="50", currency="miles", lifetime_days=30, delay_days=14
                    )
                ]
            }
        ],
    )
    # when
    purchase_confirm(
        point_of_sale=shop["hyper"], external_id="r-1", lines=lines(("COFFEE", 1, 500)), member=member
    )
    # then
    assert balance(member, "miles") == (D("0"), D("50.00"))
    lot = BonusLot.objects.get(account__member=member, account__currency__code="miles")
    assert lot.activates_at == now + dt.timedelta(days=14)
    assert lot.expires_at == now + dt.timedelta(days=44)


# --- cheque and cashier messages -----------------------------------------------------------
def test_cheque_and_cashier_messages_render_the_final_figures(shop, make_offer, member, now):
    # given the messages' offer runs first, the discount and the bonus after it
    make_offer(
        rules=[
            {
                "actions": [
                    action(
                        "cheque_message",
                        text="{{ first_name }}, your discount is {{ discount }} {{ currency }}"
                        " and {{ bonus }} points.",
                    ),
                    action("cashier_message", text="Offer {{ first_name }} a bag: total {{ total }}."),
                ]
            }
        ],
        priority=1,
    )
    make_offer(rules=[{"actions": [action("discount", kind="percent", value="10")]}], priority=2)
    make_offer(
        event="bonus_calculated",
        rules=[{"actions": [action("bonus", kind="percent", value="5")]}],
        priority=3,
    )
    # when
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(("COFFEE", 1, 510)), member=member)
    # then
    assert calc.cheque_messages == ["Анна, your discount is 51 RUB and 22.95 points."]
    assert calc.cashier_messages == ["Offer Анна a bag: total 459."]


@pytest.mark.parametrize("key", ["cheque_message", "cashier_message"])
@pytest.mark.parametrize(
    ("text", "message"), [("Hi {{ nickname }}", "nickname"), ("Hi {{ first_name", "line 1")]
)
def test_a_message_template_with_an_unknown_variable_or_a_syntax_error_is_refused(db, key, text, message):
    with pytest.raises(ValidationError) as caught:
        offer_save(
            offer=Offer(),
            rules=[{"actions": [action(key, text=text)]}],
            name="x",
            event_type="discount_calculated",
        )
    assert message in caught.value.message_dict["rules[0].actions[0]"][0]


# --- additional bonus points ---------------------------------------------------------------
def test_additional_bonus_points_are_funded_by_a_partner_account(db):
    # given
    partner = factories.PartnerFactory()
    ledger.currency_default()
    stored = entry_validate(
        offer_actions,
        action("extra_bonus", amount="100", lifetime_days=90, delay_days=1, funded_by=partner.pk),
        "a",
    )
    ctx = Context(event="app_installed", now=NOW, local_now=NOW, member=MemberInfo(id=1))
    # when
    result = evaluate(ctx, [compiled(stored, offer_id=3, name="App")])
    # then
    assert stored["params"]["funded_by"] == partner.pk
    assert result.accruals == [Accrual(3, D("100.00"), "", 90, 1, account=str(partner.pk))]
    (effect,) = result.effects
    assert (effect.action, effect.amount, effect.offer_name) == ("extra_bonus", D("100.00"), "App")


def test_additional_bonus_points_suit_any_event_where_purchase_bonuses_do_not(db, make_offer):
    offer = make_offer(event="app_installed", rules=[{"actions": [action("extra_bonus", amount="100")]}])
    with pytest.raises(ValidationError) as caught:
        make_offer(event="app_installed", rules=[{"actions": [action("bonus", kind="fixed", value="100")]}])
    assert offer.status == "active"
    assert "needs a receipt" in caught.value.message_dict["rules[0].actions[0]"][0]


def test_additional_bonus_points_refuse_an_unknown_partner_or_currency(db):
    assert list(refused("extra_bonus", amount="10", funded_by=999999)) == ["a.funded_by"]
    assert "nope" in refused("extra_bonus", amount="10", currency="nope")["a"][0]


def test_worked_offer_100_points_for_installing_the_app_are_accrued_once(
    shop, make_offer, member, now, django_capture_on_commit_callbacks
):
    # given seed 004's first worked offer
    offer = make_offer(
        event="app_installed",
        rules=[{"actions": [action("extra_bonus", amount="100")]}],
        name="100 points for the app",
    )
    # when the event is recorded (the offers run after commit)
    with django_capture_on_commit_callbacks(execute=True):
        event = event_record(member=member, event_type="app_installed", payload={"platform": "android"})
    after_commit = balance(member)
    # and the handler runs again for the same event
    event_offers_run(event)
    # then
    assert after_commit == balance(member) == (D("100.00"), D("0"))
    (operation,) = BonusOperation.objects.filter(account__member=member)
    assert operation.source_id == str(offer.pk)


def test_delayed_additional_points_wait_to_be_activated(db, make_offer, member, now):
    ledger.currency_default()
    make_offer(
        event="questionnaire_filled",
        rules=[{"actions": [action("extra_bonus", amount="25", delay_days=7, lifetime_days=30)]}],
    )
    event_offers_run(event_record(member=member, event_type="questionnaire_filled"))
    assert balance(member) == (D("0"), D("25.00"))
    assert BonusLot.objects.get(account__member=member).expires_at == now + dt.timedelta(days=37)


# --- the second worked offer: paying online in the online store ------------------------------
ONLINE_STORE = {"key": "sales_channel", "params": {"channels": ["online_store"]}}
PAID_ONLINE = {"key": "payment_method", "params": {"methods": ["online"]}}
HUNDRED_POINTS = action("bonus", kind="fixed", value="100")


def confirm(shop, member, where: str, method: str, external_id: str):
    return purchase_confirm(
        point_of_sale=shop[where],
        external_id=external_id,
        lines=lines(("COFFEE", 1, 500)),
        payments=[PaymentInput(method=method, amount=D("500"))],
        member=member,
    )


def test_a_fixed_bonus_for_buying_in_the_online_store(shop, make_offer, member, now):
    make_offer(event="bonus_calculated", rules=[{"filters": [ONLINE_STORE], "actions": [HUNDRED_POINTS]}])
    confirm(shop, member, "hyper", "card", "offline-1")
    assert balance(member) == (D("0"), D("0"))
    receipt_online, _calc = confirm(shop, member, "online", "online", "web-1")
    assert balance(member) == (D("100.00"), D("0")) and receipt_online.bonus_accrued == D("100.00")


def test_worked_offer_100_points_for_paying_online_in_the_online_store(shop, make_offer, member, now):
    # given seed 004's second worked offer
    make_offer(
        event="bonus_calculated",
        rules=[{"filters": [ONLINE_STORE, PAID_ONLINE], "actions": [HUNDRED_POINTS]}],
        name="100 points for paying online",
    )
    # when
    confirm(shop, member, "online", "card", "web-card")
    paid_by_card = balance(member)
    confirm(shop, member, "online", "online", "web-online")
    # then
    assert paid_by_card == (D("0"), D("0"))
    assert balance(member) == (D("100.00"), D("0"))


# --- messages ------------------------------------------------------------------------------
def test_worked_offer_a_welcome_sms_goes_out_through_the_file_gateway(
    make_offer, member, now, file_sms, dispatches, django_capture_on_commit_callbacks
):
    # given the welcome message's offer runs before the one that gives the points
    ledger.currency_default()
    offer = make_offer(
        event="registration_completed",
        rules=[
            {
                "actions": [
                    action(
                        "send_message", channel="sms", text="Welcome, {{ first_name }}! +{{ bonus }} points."
                    )
                ]
            }
        ],
        priority=1,
    )
    make_offer(
        event="registration_completed", rules=[{"actions": [action("extra_bonus", amount="100")]}], priority=2
    )
    # when
    with django_capture_on_commit_callbacks(execute=True):
        event = event_record(member=member, event_type="registration_completed")
    report = dispatch_batch(gateway=file_sms)
    # then
    message = Message.objects.get(member=member)
    assert message.content == {"text": "Welcome, Анна! +100 points."}
    assert (message.origin, message.origin_id, message.occurrence) == (
        Origin.OFFER,
        offer.pk,
        f"event-{event.pk}",
    )
    assert dispatches == [file_sms.pk] and report.sent == 1
    message.refresh_from_db()
    written = Path(settings.OUTBOX_DIR, "sms", message.provider_message_id).read_text()
    assert "Welcome, Анна! +100 points." in written and member.phone in written


def test_an_event_communication_renders_its_template_with_the_event_values_at_send_time(
    make_offer, member, now, file_sms, dispatches, django_capture_on_commit_callbacks
):
    from communications.models import MessageTemplate

    # given: the message is a template; a later offer gives the points
    ledger.currency_default()
    template = MessageTemplate.objects.create(
        name="Welcome",
        channel="sms",
        text="{{ salutation }}! +{{ event.bonus }} points from {{ offer.name }}; balance {{ balance }}.",
    )
    make_offer(
        event="registration_completed",
        rules=[{"actions": [action("send_message", channel="sms", template=template.pk)]}],
        priority=1,
        name="Welcome offer",
    )
    make_offer(
        event="registration_completed", rules=[{"actions": [action("extra_bonus", amount="100")]}], priority=2
    )
    # when
    with django_capture_on_commit_callbacks(execute=True):
        event_record(member=member, event_type="registration_completed")
    dispatch_batch(gateway=file_sms)
    # then: the event's bonus and the balance after the accrual are in the text
    message = Message.objects.get(member=member)
    assert message.content == {} and message.render["event"]["bonus"] == "100"
    written = Path(settings.OUTBOX_DIR, "sms", message.provider_message_id).read_text()
    assert "+100 points from Welcome offer; balance 100." in written


def test_a_template_of_another_channel_is_refused_on_the_action(db):
    from communications.models import MessageTemplate

    template = MessageTemplate.objects.create(name="Mail", channel="email", subject="s", text="t")
    assert list(refused("send_message", channel="sms", template=template.pk)) == ["a.template"]


@pytest.mark.parametrize(
    ("params", "content"),
    [
        (
            {"channel": "email", "subject": "Hello, {{ first_name }}", "text": "Balance {{ balance }}"},
            {"subject": "Hello, Анна", "text": "Balance 0"},
        ),
        (
            {"channel": "push", "title": "{{ first_name }}!", "text": "Balance {{ balance }}"},
            {"title": "Анна!", "body": "Balance 0"},
        ),
        (
            {"channel": "social", "template_id": "welcome-1", "text": "Hi {{ first_name }}"},
            {"template_id": "welcome-1", "text": "Hi Анна"},
        ),
        ({"channel": "viber", "text": "Hi {{ last_name }}"}, {"text": "Hi Иванова"}),
    ],
)
def test_a_message_has_the_content_its_channel_carries(db, make_offer, member, now, params, content):
    make_offer(event="questionnaire_filled", rules=[{"actions": [action("send_message", **params)]}])
    event_offers_run(event_record(member=member, event_type="questionnaire_filled"))
    message = Message.objects.get(member=member)
    assert (message.channel, message.content) == (params["channel"], content)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"channel": "email", "text": "Hi"}, "subject"),
        ({"channel": "push", "text": "Hi"}, "title"),
        ({"channel": "social", "text": "Hi"}, "template_id"),
        ({"channel": "email", "subject": "{{ nickname }}", "text": "Hi"}, "subject"),
        ({"channel": "sms", "text": "Hi {{ first_name"}, "text"),
        ({"channel": "fax", "text": "Hi"}, "channel"),
    ],
)
def test_a_message_without_what_its_channel_needs_or_with_a_bad_template_is_refused(db, params, field):
    assert list(refused("send_message", **params)) == [f"a.{field}"]


def test_a_message_whose_template_fails_to_render_is_not_sent(db, make_offer, member, now):
    make_offer(
        event="questionnaire_filled",
        rules=[{"actions": [action("send_message", channel="sms", text="Your code {{ event.code }}")]}],
    )
    result = event_offers_run(event_record(member=member, event_type="questionnaire_filled"))
    assert result.sends == [] and [e.action for e in result.effects] == ["send_message"]
    assert not Message.objects.filter(member=member).exists()


# --- status ----------------------------------------------------------------------------------
def test_worked_offer_a_status_is_assigned_when_the_event_is_processed(db, make_offer, member, statuses, now):
    # given
    member.status = statuses["silver"]
    member.save()
    make_offer(
        event="questionnaire_filled", rules=[{"actions": [action("status_assignment", status="gold")]}]
    )
    # when
    result = event_offers_run(event_record(member=member, event_type="questionnaire_filled"))
    # then
    member.refresh_from_db()
    assert result.status == "gold" and member.status == statuses["gold"]
    assert StatusChange.objects.get(member=member).status_from == statuses["silver"]


@pytest.mark.parametrize(("only_upgrade", "expected"), [(True, "gold"), (False, "silver")])
def test_only_upgrade_never_lowers_the_status(db, make_offer, member, statuses, now, only_upgrade, expected):
    member.status = statuses["gold"]
    member.save()
    make_offer(
        event="questionnaire_filled",
        rules=[{"actions": [action("status_assignment", status="silver", only_upgrade=only_upgrade)]}],
    )
    event_offers_run(event_record(member=member, event_type="questionnaire_filled"))
    member.refresh_from_db()
    assert member.status.code == expected


def test_only_upgrade_also_respects_a_status_an_earlier_offer_assigned(db, statuses):
    # given a member of no status; platinum is assigned first, gold after it
    ctx = Context(event="status_calculated", now=NOW, local_now=NOW, member=MemberInfo(id=1))
    platinum = compiled(action("status_assignment", status="platinum", only_upgrade=True), offer_id=1)
    gold = compiled(action("status_assignment", status="gold", only_upgrade=True), offer_id=2)
    # when
    result = evaluate(ctx, [platinum, gold])
    # then
    assert result.status == "platinum" and [e.offer_id for e in result.effects] == [1]


def test_status_only_upgrade_is_on_unless_switched_off(db, statuses):
    stored = entry_validate(offer_actions, action("status_assignment", status="gold"), "a")
    assert stored["params"] == {"status": "gold", "only_upgrade": True}
    assert list(refused("status_assignment", status="diamond")) == ["a.status"]


# --- counters ------------------------------------------------------------------------------
def test_worked_offer_counters_change_when_events_are_processed(db, make_offer, member, now):
    # given
    visits = Counter.objects.create(key="visits", name="Website visits")
    make_offer(
        event="website_visit",
        rules=[{"actions": [action("counter_change", counter="visits", operation="add", value="1")]}],
    )
    make_offer(
        event="cart_abandoned",
        rules=[{"actions": [action("counter_change", counter="visits", operation="add", value="-0.5")]}],
    )
    make_offer(
        event="order_cancelled",
        rules=[{"actions": [action("counter_change", counter="visits", operation="set", value="10")]}],
    )
    # when / then
    for event_type, value in [
        ("website_visit", "1"),
        ("website_visit", "2"),
        ("cart_abandoned", "1.5"),
        ("order_cancelled", "10"),
    ]:
        event_offers_run(event_record(member=member, event_type=event_type))
        assert CounterValue.objects.get(member=member, counter=visits).value == D(value)


def test_a_counter_set_replaces_earlier_additions_and_later_ones_add_to_it(db):
    Counter.objects.create(key="visits", name="Visits")
    ctx = Context(event="website_visit", now=NOW, local_now=NOW, member=MemberInfo(id=1))
    add = action("counter_change", counter="visits", operation="add", value="2")
    put = action("counter_change", counter="visits", operation="set", value="5")
    result = evaluate(ctx, [compiled(add, offer_id=1), compiled(put, offer_id=2), compiled(add, offer_id=3)])
    assert result.counter_sets == {"visits": D("5")} and result.counters == {"visits": D("2")}


def test_a_counter_change_names_a_known_counter_and_a_non_zero_addition(db):
    Counter.objects.create(key="visits", name="Visits")
    assert list(refused("counter_change", counter="nope", operation="add", value="1")) == ["a.counter"]
    assert list(refused("counter_change", counter="visits", operation="add", value="0")) == ["a.value"]


# --- every action ----------------------------------------------------------------------------
BAD_PARAMS = {
    "discount": ({"kind": "percent", "value": "0"}, "value"),
    "bonus": ({"kind": "gift", "value": "10"}, "kind"),
    "cheque_message": ({"text": "x" * 1001}, "text"),
    "cashier_message": ({"text": ""}, "text"),
    "extra_bonus": ({"amount": "-5"}, "amount"),
    "send_message": ({"channel": "sms"}, "text"),
    "status_assignment": ({}, "status"),
    "counter_change": ({"counter": "visits", "operation": "add", "value": "abc"}, "value"),
}


@pytest.mark.parametrize("key", [cls.key for cls in offer_actions])
def test_every_action_has_a_label_a_form_and_refuses_bad_params_by_field(db, key):
    # given
    Counter.objects.create(key="visits", name="Visits")
    cls = offer_actions.get(key)
    params, field = BAD_PARAMS.get(key, ({}, None))
    # when
    html = str(cls.params(prefix="a"))
    errors = refused(key, **params)
    # then
    assert str(cls.label).strip()
    assert 'name="a-' in html
    if field is None:
        assert errors and all(name.startswith("a.") for name in errors)
    else:
        assert f"a.{field}" in errors
