"""The demo program's offers work at its stores."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from loyalty import demo
from loyalty.models import PointOfSale, Product
from offers.models import Offer
from offers.services import purchase_calculate
from tests.offers.conftest import lines

pytestmark = pytest.mark.django_db


def test_demo_offers_price_hypermarket_and_online_receipts(now):
    demo.program_setup()
    call_command("seed_demo_offers")
    assert Offer.objects.filter(status="active").count() >= 3
    sku = Product.objects.order_by("sku").values_list("sku", flat=True).first()
    hyper = PointOfSale.objects.filter(attributes__CustomTradeFormat="Hypermarket").first()
    online = PointOfSale.objects.filter(kind="online_store").first()
    receipt = lines((sku, 2, 500))
    in_hyper = purchase_calculate(point_of_sale=hyper, lines=receipt, payments=["card"])
    assert in_hyper.result.discount_total() == Decimal("100.00")
    assert in_hyper.cheque_messages == ["Ваша скидка: 100 ₽."]
    assert in_hyper.cashier_messages
    paid_online = purchase_calculate(point_of_sale=online, lines=receipt, payments=["online"])
    assert paid_online.result.discount_total() == 0
    assert Decimal("100") in [a.amount for a in paid_online.result.accruals]
    # running it again adds nothing
    call_command("seed_demo_offers")
    assert Offer.objects.filter(name__startswith="Скидка 10").count() == 1
