"""Personal products: a member picks products from a list for its period, the engine
rewards the picks at the till, and a marketer sets up the list in the back office."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.urls import reverse

from loyalty.models import Product
from loyalty.roles import MARKETER
from offers.context import member_info
from offers.models import PersonalProduct, PersonalProductProgram
from offers.personal import picks_of, picks_set, program_products, programs_open
from offers.services import purchase_calculate
from tests import factories
from tests.offers.conftest import NOW, lines

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)
RECEIPT = (("COFFEE", 1, 500), ("TEA", 1, 200), ("BREAD", 1, 50))


@pytest.fixture
def products(shop):
    return {p.sku: p for p in Product.objects.all()}


@pytest.fixture
def program(products, now):
    """November: two of coffee, tea and bread."""
    program = PersonalProductProgram.objects.create(
        name="November favourites", max_picks=2, starts_at=NOW - 10 * DAY, ends_at=NOW + 7 * DAY
    )
    program.products.set([products["COFFEE"], products["TEA"], products["BREAD"]])
    return program


def ids(*products) -> list[int]:
    return [p.pk for p in products]


def test_a_member_picks_products_for_the_period(program, products):
    member = factories.MemberFactory()
    # when
    picks = picks_set(member=member, program=program, product_ids=ids(products["COFFEE"], products["TEA"]))
    # then: held from now until the list's period ends
    assert {p.product.sku for p in picks} == {"COFFEE", "TEA"}
    assert all(p.valid_from == NOW and p.valid_until == program.ends_at for p in picks)
    assert picks_of(member, [program]) == {program.pk: {products["COFFEE"].pk, products["TEA"].pk}}


def test_picking_again_replaces_the_previous_picks(program, products):
    member = factories.MemberFactory()
    picks_set(member=member, program=program, product_ids=ids(products["COFFEE"], products["TEA"]))
    # when
    picks_set(member=member, program=program, product_ids=ids(products["BREAD"]))
    # then
    assert list(PersonalProduct.objects.filter(member=member).values_list("product__sku", flat=True)) == [
        "BREAD"
    ]


def test_more_picks_than_allowed_are_refused(program, products):
    member = factories.MemberFactory()
    picks_set(member=member, program=program, product_ids=ids(products["COFFEE"]))
    with pytest.raises(ValidationError) as caught:
        picks_set(member=member, program=program, product_ids=ids(*products.values()))
    assert "at most 2" in " ".join(caught.value.message_dict["products"])
    # the earlier pick stands
    assert picks_of(member, [program])[program.pk] == {products["COFFEE"].pk}


def test_the_same_product_twice_counts_once(program, products):
    member = factories.MemberFactory()
    picks = picks_set(member=member, program=program, product_ids=ids(products["TEA"], products["TEA"]))
    assert len(picks) == 1


def test_a_product_not_on_the_list_is_refused(program, products):
    stray = factories.ProductFactory(sku="MILK")
    inactive = products["BREAD"]
    inactive.active = False
    inactive.save()
    member = factories.MemberFactory()
    for product in (stray, inactive):
        with pytest.raises(ValidationError) as caught:
            picks_set(member=member, program=program, product_ids=ids(product))
        assert str(product.pk) in " ".join(caught.value.message_dict["products"])
    assert not PersonalProduct.objects.exists()
    assert [p.sku for p in program_products(program)] == ["COFFEE", "TEA"]  # ordered by name


@pytest.mark.parametrize("closing", [{"active": False}, {"ends_at": NOW}])
def test_a_closed_list_is_refused(program, products, closing):
    PersonalProductProgram.objects.filter(pk=program.pk).update(**closing)
    program.refresh_from_db()
    with pytest.raises(ValidationError) as caught:
        picks_set(member=factories.MemberFactory(), program=program, product_ids=ids(products["TEA"]))
    assert "closed" in " ".join(caught.value.message_dict["products"])
    assert programs_open() == []


def test_picks_for_an_upcoming_list_hold_from_its_start(program, products):
    upcoming = PersonalProductProgram.objects.create(
        name="December", max_picks=1, starts_at=NOW + 8 * DAY, ends_at=NOW + 38 * DAY
    )
    upcoming.products.set([products["BREAD"]])
    member = factories.MemberFactory()
    picks_set(member=member, program=upcoming, product_ids=ids(products["BREAD"]))
    # then: listed as open, but the engine does not see the pick yet
    assert programs_open() == [program, upcoming]
    now_info = member_info(member, frozenset({"personal_products"}), NOW)
    later_info = member_info(member, frozenset({"personal_products"}), NOW + 9 * DAY)
    assert now_info.personal_products == frozenset()
    assert later_info.personal_products == frozenset({"BREAD"})


def test_the_engine_rewards_the_picked_products_at_the_till(program, products, shop, make_offer):
    # given: 10% off personal products
    make_offer(
        rules=[
            {
                "filters": [{"key": "personal_products"}],
                "actions": [{"key": "discount", "params": {"kind": "percent", "value": "10"}}],
            }
        ]
    )
    member = factories.MemberFactory()
    picks_set(member=member, program=program, product_ids=ids(products["TEA"]))
    # when
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=member)
    # then: only the tea line is discounted
    assert member_info(member, frozenset({"personal_products"}), NOW).personal_products == {"TEA"}
    assert [ln.sku for ln in calc.ctx.lines if ln.discount] == ["TEA"]
    # and once the member drops the pick, nothing
    picks_set(member=member, program=program, product_ids=[])
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=member)
    assert [ln.sku for ln in calc.ctx.lines if ln.discount] == []


# --- the back office -------------------------------------------------------------------------


@pytest.fixture
def marketer(client):
    user = User.objects.create_user("marketer", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=MARKETER))
    client.force_login(user)
    return client


def program_data(catalogue, **extra) -> dict:
    return {
        "name": "December favourites",
        "description": "",
        "active": "on",
        "products": ids(catalogue["COFFEE"], catalogue["TEA"]),
        "max_picks": "2",
        "starts_at_0": "2026-12-01",
        "starts_at_1": "00:00",
        "ends_at_0": "2027-01-01",
        "ends_at_1": "00:00",
        **extra,
    }


ADD = "/admin/offers/personalproductprogram/add/"


def test_a_marketer_sets_up_a_list(marketer, products, now):
    # the product picker searches the catalogue
    found = marketer.get(
        "/admin/autocomplete/",
        {
            "app_label": "offers",
            "model_name": "personalproductprogram",
            "field_name": "products",
            "term": "Coff",
        },
    )
    assert found.status_code == 200 and [r["text"] for r in found.json()["results"]] == [
        "Coffee beans (COFFEE)"
    ]
    # when
    response = marketer.post(ADD, program_data(products))
    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    program = PersonalProductProgram.objects.get()
    assert {p.sku for p in program.products.all()} == {"COFFEE", "TEA"} and program.max_picks == 2
    assert program.starts_at == dt.datetime(2026, 11, 30, 21, 0, tzinfo=dt.UTC)  # midnight in Moscow


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ends_at_0": "2026-11-30"}, "ends_at"),
        ({"ends_at_0": "2026-12-01"}, "ends_at"),
        ({"max_picks": "0"}, "max_picks"),
        ({"products": []}, "products"),
    ],
)
def test_a_bad_list_is_refused_on_its_field(marketer, products, now, fields, field):
    page = marketer.post(ADD, program_data(products, **fields))
    assert page.status_code == 200
    assert list(page.context["adminform"].form.errors) == [field]
    assert not PersonalProductProgram.objects.exists()


def test_the_list_shows_who_picked_and_the_most_picked_products(marketer, program, products):
    for picked in (
        [products["TEA"], products["COFFEE"]],
        [products["TEA"]],
        [products["TEA"], products["BREAD"]],
    ):
        picks_set(member=factories.MemberFactory(), program=program, product_ids=ids(*picked))
    # when
    listing = marketer.get("/admin/offers/personalproductprogram/")
    page = marketer.get(reverse("admin:offers_personalproductprogram_change", args=[program.pk]))
    # then
    (row,) = listing.context["cl"].result_list
    assert (row.products_total, row.members_total) == (3, 3)
    content = page.content.decode()
    assert "Members who picked: 3." in content
    tea, coffee, bread = (content.index(f"<small>{sku}</small>") for sku in ("TEA", "COFFEE", "BREAD"))
    assert tea < bread < coffee  # most picked first, then by name
    assert "Tea <small>TEA</small></td><td>3<" in content
