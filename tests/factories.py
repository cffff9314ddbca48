from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from loyalty import models
from loyalty.services.cards import card_number_new


class PartnerFactory(DjangoModelFactory):
    class Meta:
        model = models.Partner
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"partner-{n}")
    name = factory.Sequence(lambda n: f"Partner {n}")


class PointOfSaleFactory(DjangoModelFactory):
    class Meta:
        model = models.PointOfSale

    partner = factory.SubFactory(PartnerFactory)
    code = factory.Sequence(lambda n: f"store-{n}")
    name = factory.Sequence(lambda n: f"Store {n}")
    time_zone = "Europe/Moscow"


class PaymentMethodFactory(DjangoModelFactory):
    class Meta:
        model = models.PaymentMethod
        django_get_or_create = ("code",)

    code = "cash"
    name = "Cash"
    kind = models.PaymentMethodKind.CASH


class ProductGroupFactory(DjangoModelFactory):
    class Meta:
        model = models.ProductGroup

    code = factory.Sequence(lambda n: f"group-{n}")
    name = factory.Sequence(lambda n: f"Group {n}")


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = models.Product

    sku = factory.Sequence(lambda n: f"SKU{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    group = factory.SubFactory(ProductGroupFactory)
    price = Decimal("100.00")


class MemberFactory(DjangoModelFactory):
    class Meta:
        model = models.Member

    last_name = "Иванова"
    first_name = "Анна"
    phone = factory.Sequence(lambda n: f"+7916{n:07d}")
    phone_status = models.ContactStatus.VALID
    time_zone = "Europe/Moscow"
    state = models.MemberState.ACTIVATED
    referral_code = factory.Sequence(lambda n: f"R{n:07d}")


class CardFactory(DjangoModelFactory):
    class Meta:
        model = models.Card

    number = factory.LazyFunction(card_number_new)
    member = factory.SubFactory(MemberFactory)
    state = models.CardState.ACTIVATED
