"""Templates: every metavariable renders with a member's real data, unknown variables are
refused on save with their name, and the sandbox holds."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from communications.models import MessageTemplate
from communications.templating import (
    RenderError,
    metavariables,
    render_for_member,
    render_part,
    template_errors,
)
from loyalty.models import Status
from loyalty.models.ledger import SourceType
from loyalty.services.ledger import Source, account_get_or_create, bonus_accrue
from tests import factories

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def _accrue(account, amount, *, key, lifetime_days=None, delay_days=0):
    activates = NOW + dt.timedelta(days=delay_days)
    return bonus_accrue(
        account=account,
        amount=Decimal(amount),
        source=Source(type=SourceType.OPERATOR, label="test"),
        activates_at=activates,
        expires_at=activates + dt.timedelta(days=lifetime_days) if lifetime_days else None,
        idempotency_key=key,
    )


@pytest.fixture
def olga(db, time_machine):
    time_machine.move_to(NOW, tick=False)
    gold = Status.objects.create(code="gold", name="Gold", rank=5)
    member = factories.MemberFactory(
        first_name="Olga",
        middle_name="Ivanovna",
        last_name="Smirnova",
        gender="female",
        birth_date=dt.date(1990, 3, 12),
        city="Moscow",
        language="en",
        status=gold,
    )
    factories.CardFactory(member=member, number="2000000000017", state="activated")
    _accrue(account_get_or_create(member=member), "300", key="o1", lifetime_days=30)
    return member


def test_every_metavariable_renders_for_a_member(olga):
    # given: a template reading every registered variable
    names = [v.name for v in metavariables]
    # when
    rendered = {
        name: render_for_member(
            {"text": "{{ " + name + " }}"},
            olga.pk,
            {
                "event": {"amount": 5},
                "offer": {"name": "Autumn"},
                "unsubscribe_url": "u",
                "view_online_url": "v",
            },
        )["text"]
        for name in names
    }
    # then: member-derived values are the member's, nothing failed
    assert rendered["first_name"] == "Olga" and rendered["middle_name"] == "Ivanovna"
    assert rendered["full_name"] == "Olga Ivanovna Smirnova"
    assert rendered["salutation"] == "Dear Olga Ivanovna"
    assert rendered["birth_date"] == "12 Mar 1990" and rendered["city"] == "Moscow"
    assert rendered["card_number"] == "2000000000017" and rendered["status"] == "Gold"
    assert rendered["balance"] == "300" and rendered["expiring_amount"] == "300"
    assert rendered["expiring_date"] == "23 Dec 2026"
    assert rendered["unsubscribe_url"] == "u" and rendered["view_online_url"] == "v"
    assert "5" in rendered["event"] and "Autumn" in rendered["offer"]
    assert set(rendered) == set(names)


def test_bonus_variables_come_from_the_actual_lots(db, time_machine):
    from loyalty.models import BonusAccount

    time_machine.move_to(NOW, tick=False)
    member = factories.MemberFactory(language="ru")
    account = account_get_or_create(member=member)
    _accrue(account, "120", lifetime_days=30, key="a")
    _accrue(account, "80", lifetime_days=60, key="b")
    _accrue(account, "50", delay_days=3, key="c")
    parts = {
        "text": "{{ balance }}|{{ pending }}|{{ expiring_amount }} {{ expiring_date }}|"
        "{{ activating_amount }} {{ activating_date }}|{{ balances." + account.currency.code + " }}"
    }
    assert BonusAccount.objects.get(pk=account.pk).available == 200
    assert render_for_member(parts, member.pk)["text"] == "200|50|120 23.12.2026|50 26.11.2026|200"


@pytest.mark.parametrize(
    ("source", "name"),
    [("Hello {{ frist_name }}", "frist_name"), ("{% if balanse %}x{% endif %}", "balanse")],
)
def test_an_unknown_variable_is_refused_with_its_name(source, name):
    assert template_errors(source) == [f"Unknown variable {name}."]


def test_a_template_with_a_misspelt_variable_is_refused_on_save_naming_the_field():
    template = MessageTemplate(name="x", channel="email", subject="Hi {{ first_nme }}", text="ok")
    with pytest.raises(ValidationError) as info:
        template.full_clean()
    assert info.value.message_dict["subject"] == ["Unknown variable first_nme."]


def test_a_syntax_error_names_its_line():
    [error] = template_errors("one\n{{ first_name ")
    assert error.startswith("Template error on line 2")


@pytest.mark.parametrize(
    "source",
    [
        "{{ first_name.__class__ }}",
        "{{ first_name.__class__.__mro__ }}",
        "{{ (first_name|attr('__class__')).__name__ }}",
        "{{ '{0.__class__}'.format(first_name) }}",
        "{{ '{a.__class__.__init__.__globals__}'.format_map({'a': first_name}) }}",
        "{% for i in range(10000000) %}x{% endfor %}",
        "{{ 'x' * 100000000 }}",
        "{% for i in range(1000) %}{% for j in range(1000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
    ],
)
def test_sandbox_escapes_are_blocked(source):
    with pytest.raises(RenderError):
        render_part("text", source, {"first_name": "Olga", "event": {}})


def test_html_parts_are_autoescaped_and_text_parts_are_not():
    context = {"first_name": "<b>Olga</b>"}
    assert render_part("html", "<p>{{ first_name }}</p>", context) == "<p>&lt;b&gt;Olga&lt;/b&gt;</p>"
    assert render_part("text", "{{ first_name }}", context) == "<b>Olga</b>"


def test_viber_templates_keep_to_the_allowed_combinations():
    template = MessageTemplate(name="v", channel="viber", text="Hi", button_text="Go")
    with pytest.raises(ValidationError) as info:
        template.full_clean()
    assert "text" in info.value.message_dict


def test_an_sms_template_needs_text_and_an_email_template_a_subject():
    with pytest.raises(ValidationError) as info:
        MessageTemplate(name="s", channel="sms").full_clean()
    assert "text" in info.value.message_dict
    with pytest.raises(ValidationError) as info:
        MessageTemplate(name="e", channel="email", text="x").full_clean()
    assert "subject" in info.value.message_dict


def test_a_salutation_follows_gender_and_language(db):
    woman = factories.MemberFactory(
        first_name="Ольга", middle_name="Ивановна", gender="female", language="ru"
    )
    man = factories.MemberFactory(first_name="Иван", middle_name="Петрович", gender="male", language="ru")
    assert render_for_member({"text": "{{ salutation }}"}, woman.pk)["text"] == "Уважаемая Ольга Ивановна"
    assert render_for_member({"text": "{{ salutation }}"}, man.pk)["text"] == "Уважаемый Иван Петрович"


def test_templates_of_text_names_and_ifs_render_as_jinja_renders_them():
    from decimal import Decimal

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from communications.templating import _compiled, _plan, render_part

    names = ["first_name", "balance", "expiring_date"]
    text = st.text(
        alphabet=st.characters(blacklist_characters="{}%#\x1e", blacklist_categories=("Cs",)), max_size=12
    )
    value = st.one_of(text, st.integers(), st.decimals(allow_nan=False, allow_infinity=False, places=2))
    output = st.one_of(text, st.sampled_from(names).map(lambda n: "{{ " + n + " }}"))
    flat = st.lists(output, max_size=4).map("".join)
    spaces = st.sampled_from(["", "\n", "  ", "\n  "])
    branch = st.tuples(st.sampled_from(names), flat, flat, st.booleans(), spaces).map(
        lambda b: (
            f"{b[4]}{{% if {b[0]} %}}{b[1]}{{% elif {b[0]} %}}{b[2]}{{% endif %}}{b[4]}"
            if b[3]
            else f"{b[4]}{{% if {b[0]} %}}{b[1]}{{% else %}}{b[2]}{{% endif %}}{b[4]}"
        )
    )
    piece = st.one_of(output, branch)
    falsy_or_not = st.one_of(value, st.sampled_from(["", 0, None]))

    @settings(max_examples=400, deadline=None)
    @given(st.lists(piece, min_size=1, max_size=6), st.fixed_dictionaries({n: falsy_or_not for n in names}))
    def check(parts, values):
        source = "".join(parts)
        for part in ("text", "html"):
            assert _plan(part, source)[3] is not None  # the fast path is the one under test
            jinja = _compiled(part, source).render(**values)
            assert render_part(part, source, values) == jinja

    check()
    assert _plan("text", "{{ balance|round }}")[3] is None
    assert _plan("text", "{% for x in range(3) %}{{ x }}{% endfor %}")[3] is None
    assert render_part("html", "<b>{{ first_name }}</b>", {"first_name": "<O&K>"}) == "<b>&lt;O&amp;K&gt;</b>"
    assert render_part("text", "{{ balance }}", {"balance": Decimal("1.50")}) == "1.50"
