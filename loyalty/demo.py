"""The demo program: a believable retailer with stores of several formats, an online
store and an app, a catalog, members with Russian names and phones across time zones, and
a year of receipts and bonus history. Deterministic for a given seed.

Members are generated as column tuples and loaded set-wise: PostgreSQL ``COPY`` through
psycopg 3, ``bulk_create`` in batches elsewhere. The bonus history goes through the real
ledger services (with past timestamps), for a bounded number of members, so it obeys
every ledger invariant.
"""

import datetime as dt
import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from loyalty import roles
from loyalty.models import (
    Card,
    Consent,
    ContactChannel,
    ContactStatus,
    Currency,
    CustomField,
    CustomFieldKind,
    Gender,
    Member,
    MemberEvent,
    MemberState,
    Partner,
    PaymentMethod,
    PaymentMethodKind,
    PointOfSale,
    Product,
    ProductGroup,
    Receipt,
    ReceiptLine,
    ReceiptPayment,
    ReceiptState,
    RegistrationChannel,
    SalesChannel,
    SourceType,
    Status,
)
from loyalty.services import ledger
from loyalty.services.cards import luhn_check_digit
from loyalty.services.contacts import _phone_info, city_time_zone

FEMALE_FIRST = [
    "Анна",
    "Мария",
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Екатерина",
    "Светлана",
    "Юлия",
    "Анастасия",
    "Дарья",
    "Полина",
    "Ксения",
    "Виктория",
    "Алина",
]
MALE_FIRST = [
    "Александр",
    "Сергей",
    "Дмитрий",
    "Андрей",
    "Алексей",
    "Максим",
    "Иван",
    "Михаил",
    "Евгений",
    "Николай",
    "Артём",
    "Владимир",
    "Павел",
    "Роман",
    "Илья",
    "Кирилл",
]
LAST = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
]
MIDDLE_ROOTS = [
    "Александров",
    "Сергеев",
    "Дмитриев",
    "Андреев",
    "Алексеев",
    "Иванов",
    "Михайлов",
    "Николаев",
    "Петров",
    "Владимиров",
]
TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "y",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "sch",
            "",
            "y",
            "",
            "e",
            "yu",
            "ya",
        ],
        strict=True,
    )
)
# City, weight: several time zones, most members in the west.
CITIES = [
    ("Москва", 30),
    ("Санкт-Петербург", 14),
    ("Казань", 6),
    ("Нижний Новгород", 5),
    ("Самара", 5),
    ("Екатеринбург", 8),
    ("Пермь", 4),
    ("Омск", 4),
    ("Новосибирск", 7),
    ("Красноярск", 4),
    ("Иркутск", 3),
    ("Владивосток", 3),
    ("Хабаровск", 2),
    ("Калининград", 3),
    ("Краснодар", 6),
]
# Mobile DEF codes of the big operators; the operator itself is looked up per prefix.
DEF_CODES = [
    "916",
    "903",
    "926",
    "985",
    "905",
    "915",
    "925",
    "977",
    "913",
    "923",
    "912",
    "922",
    "950",
    "952",
    "902",
    "904",
    "908",
    "924",
    "914",
    "927",
    "937",
    "917",
    "987",
    "999",
]
SKU_GROUPS = {
    "food": ("Продукты", None),
    "dairy": ("Молочные продукты", "food"),
    "bakery": ("Хлеб и выпечка", "food"),
    "coffee-tea": ("Кофе и чай", "food"),
    "fruit-veg": ("Овощи и фрукты", "food"),
    "household": ("Товары для дома", None),
    "cleaning": ("Бытовая химия", "household"),
    "kitchen": ("Посуда", "household"),
    "beauty": ("Красота и здоровье", None),
    "kids": ("Детские товары", None),
    "pets": ("Зоотовары", None),
}
PRODUCTS = {
    "dairy": [
        ("Молоко 3,2% 1 л", 89),
        ("Кефир 1% 900 г", 79),
        ("Творог 5% 400 г", 159),
        ("Сыр Российский 200 г", 229),
        ("Йогурт питьевой 270 г", 65),
    ],
    "bakery": [("Батон нарезной", 49), ("Хлеб Бородинский", 59), ("Круассан", 79)],
    "coffee-tea": [
        ("Кофе в зёрнах 1 кг", 1290),
        ("Кофе молотый 250 г", 449),
        ("Чай чёрный 100 пак.", 329),
        ("Чай зелёный 25 пак.", 149),
    ],
    "fruit-veg": [
        ("Бананы 1 кг", 119),
        ("Яблоки Гала 1 кг", 149),
        ("Томаты 1 кг", 239),
        ("Огурцы 1 кг", 189),
        ("Картофель 2,5 кг", 169),
    ],
    "cleaning": [
        ("Средство для посуды 500 мл", 129),
        ("Стиральный порошок 3 кг", 599),
        ("Губки для посуды 5 шт.", 69),
    ],
    "kitchen": [("Сковорода 26 см", 1490), ("Набор ножей", 2190)],
    "beauty": [("Шампунь 400 мл", 349), ("Зубная паста", 159), ("Крем для рук", 199)],
    "kids": [("Подгузники 4 размер", 1190), ("Детское пюре 80 г", 59), ("Конструктор", 1990)],
    "pets": [("Корм для кошек 1,5 кг", 649), ("Наполнитель 5 л", 299)],
}
STORES = [
    # code, name, kind, format attribute, city, time zone
    (
        "msk-hyper-1",
        "Гипермаркет «Северный»",
        SalesChannel.OFFLINE,
        "Hypermarket",
        "Москва",
        "Europe/Moscow",
    ),
    (
        "msk-super-1",
        "Супермаркет на Тверской",
        SalesChannel.OFFLINE,
        "Supermarket",
        "Москва",
        "Europe/Moscow",
    ),
    (
        "msk-near-1",
        "Магазин у дома на Арбате",
        SalesChannel.OFFLINE,
        "Convenience",
        "Москва",
        "Europe/Moscow",
    ),
    (
        "spb-hyper-1",
        "Гипермаркет «Пулково»",
        SalesChannel.OFFLINE,
        "Hypermarket",
        "Санкт-Петербург",
        "Europe/Moscow",
    ),
    (
        "ekb-super-1",
        "Супермаркет «Плотинка»",
        SalesChannel.OFFLINE,
        "Supermarket",
        "Екатеринбург",
        "Asia/Yekaterinburg",
    ),
    (
        "nsk-hyper-1",
        "Гипермаркет «Обь»",
        SalesChannel.OFFLINE,
        "Hypermarket",
        "Новосибирск",
        "Asia/Novosibirsk",
    ),
    (
        "vvo-near-1",
        "Магазин у дома «Золотой Рог»",
        SalesChannel.OFFLINE,
        "Convenience",
        "Владивосток",
        "Asia/Vladivostok",
    ),
    ("online", "Интернет-магазин", SalesChannel.ONLINE_STORE, "", "", "Europe/Moscow"),
    ("app", "Мобильное приложение", SalesChannel.MOBILE_APP, "", "", "Europe/Moscow"),
]
DEMO_USERS = [
    # username, role, superuser
    ("admin", roles.ADMINISTRATOR, True),
    ("marketer", roles.MARKETER, False),
    ("analyst", roles.ANALYST, False),
    ("designer", roles.DESIGNER, False),
    ("operator", roles.OPERATOR, False),
    ("pos", roles.API_USER, False),
]
MEMBER_COLUMNS = [
    "id",
    "external_id",
    "last_name",
    "first_name",
    "middle_name",
    "gender",
    "birth_date",
    "phone",
    "phone_raw",
    "phone_status",
    "phone_operator",
    "phone_region",
    "email",
    "email_raw",
    "email_status",
    "postal_address",
    "city",
    "time_zone",
    "time_zone_source",
    "children",
    "pets",
    "custom_fields",
    "registered_at",
    "registration_channel",
    "state",
    "blocked_reason",
    "status_id",
    "referral_code",
    "referrer_id",
    "language",
    "created_at",
    "updated_at",
]


def demo_password(username: str) -> str:
    return f"{username}-demo"


@transaction.atomic
def program_setup() -> dict:
    """Partners, points of sale, payment methods, currencies, statuses, custom fields,
    catalog and the demo back-office users. Idempotent."""
    partner, _ = Partner.objects.get_or_create(
        code="demo-retail", defaults={"name": "Демо Ритейл", "legal_name": "ООО «Демо Ритейл»"}
    )
    for code, name, kind, fmt, city, tz in STORES:
        attributes = {"CustomTradeFormat": fmt} if fmt else {}
        if fmt == "Hypermarket":
            attributes.update({"CoffeeShop": "yes", "OpeningHours": "08:00-23:00"})
        elif fmt:
            attributes["OpeningHours"] = "07:00-23:00" if fmt == "Supermarket" else "00:00-24:00"
        PointOfSale.objects.get_or_create(
            code=code,
            defaults={
                "partner": partner,
                "name": name,
                "kind": kind,
                "city": city,
                "time_zone": tz,
                "attributes": attributes,
            },
        )
    for code, name, kind in [
        ("cash", "Наличные", PaymentMethodKind.CASH),
        ("card", "Банковская карта", PaymentMethodKind.BANK_CARD),
        ("bonuses", "Бонусы", PaymentMethodKind.BONUSES),
        ("online", "Онлайн-оплата", PaymentMethodKind.ONLINE),
    ]:
        PaymentMethod.objects.get_or_create(code=code, defaults={"name": name, "kind": kind})
    ledger.currency_default()
    Currency.objects.get_or_create(code="promo", defaults={"name": "Промо-баллы", "spend_priority": 10})
    for rank, (code, name) in enumerate([("bronze", "Бронза"), ("silver", "Серебро"), ("gold", "Золото")], 1):
        Status.objects.get_or_create(code=code, defaults={"name": name, "rank": rank})
    for order, (code, label, kind, choices) in enumerate(
        [
            (
                "favourite_store",
                "Любимый магазин",
                CustomFieldKind.CHOICE,
                ["Гипермаркет", "У дома", "Онлайн"],
            ),
            ("has_car", "Есть автомобиль", CustomFieldKind.BOOLEAN, []),
            ("household_size", "Человек в семье", CustomFieldKind.NUMBER, []),
        ]
    ):
        CustomField.objects.get_or_create(
            code=code, defaults={"label": label, "kind": kind, "choices": choices, "order": order}
        )
    groups = {}
    for code, (name, parent) in SKU_GROUPS.items():
        groups[code], _ = ProductGroup.objects.get_or_create(
            code=code, defaults={"name": name, "parent": groups.get(parent)}
        )
    n = 0
    for group_code, items in PRODUCTS.items():
        for name, price in items:
            n += 1
            Product.objects.get_or_create(
                sku=f"{group_code[:3].upper()}-{n:04d}",
                defaults={"name": name, "group": groups[group_code], "price": Decimal(price)},
            )
    users_setup()
    return {"partner": partner}


def users_setup() -> list[tuple[str, str, str]]:
    """One demo back-office user per role (and an API user for the points of sale)."""
    User = get_user_model()
    roles.roles_sync()
    out = []
    for username, role, superuser in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"is_staff": role in roles.STAFF_ROLES, "is_superuser": superuser},
        )
        if created:
            user.set_password(demo_password(username))
            user.save()
            user.groups.add(Group.objects.get(name=role))
        out.append((username, demo_password(username), role))
    return out


@dataclass
class MemberPlan:
    count: int
    seed: int = 42
    start_id: int = 1
    now: dt.datetime | None = None


def _translit(text: str) -> str:
    return "".join(TRANSLIT.get(c, c) for c in text.lower())


def members_generate(plan: MemberPlan, statuses: list[int]) -> Iterator[tuple]:
    """Column tuples in ``MEMBER_COLUMNS`` order. Phones are unique by construction (an
    odd multiplier coprime to 10⁷ walks each DEF block without repeats); their operator
    is looked up once per prefix with the same service the admin and API use."""
    rng = random.Random(plan.seed)
    now = plan.now or timezone.now()
    city_names = [c for c, _ in CITIES]
    city_cum = list(itertools.accumulate(w for _, w in CITIES))
    reg_channels = [
        RegistrationChannel.POINT_OF_SALE,
        RegistrationChannel.MOBILE_APP,
        RegistrationChannel.PERSONAL_ACCOUNT,
        RegistrationChannel.ONLINE_STORE,
    ]
    reg_cum = [50, 75, 90, 100]
    zones = {c: city_time_zone(c) for c in city_names}
    operators: dict[str, tuple[str, str]] = {}
    two_years = 730 * 86400
    for i in range(plan.count):
        member_id = plan.start_id + i
        female = rng.random() < 0.58
        first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
        last = rng.choice(LAST) + ("а" if female else "")
        middle = rng.choice(MIDDLE_ROOTS) + ("на" if female else "ич")
        block, local = divmod(member_id * 7919 + plan.seed, 10_000_000)
        def_code = DEF_CODES[block % len(DEF_CODES)]
        e164 = f"+7{def_code}{local:07d}"
        prefix = e164[:6]
        if prefix not in operators:
            info = _phone_info(e164)
            operators[prefix] = (info.operator, info.region)
        operator, region = operators[prefix]
        roll = rng.random()
        if roll < 0.03:  # typed badly at the till: kept, flagged as invalid contact data
            phone, phone_raw, phone_status, operator_, region_ = (
                "",
                f"8{def_code}{local:07d}"[:7],
                ContactStatus.INVALID,
                "",
                "",
            )
        else:
            phone, phone_raw, phone_status, operator_, region_ = (
                e164,
                f"8 ({def_code}) {local:07d}",
                ContactStatus.VALID,
                operator,
                region,
            )
        if rng.random() < 0.65:
            email = f"{_translit(first)}.{_translit(last)}{member_id}@example.ru"
            email_raw, email_status = email, ContactStatus.VALID
            if rng.random() < 0.04:
                email, email_raw, email_status = (
                    "",
                    email.replace("@", " at "),
                    ContactStatus.INVALID,
                )
        else:
            email, email_raw, email_status = "", "", ContactStatus.MISSING
        city = rng.choices(city_names, cum_weights=city_cum)[0]
        registered = now - dt.timedelta(seconds=rng.randrange(two_years))
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(56 * 365))
        children = (
            [
                {
                    "name": rng.choice(FEMALE_FIRST + MALE_FIRST),
                    "birth_date": str(birth.replace(year=min(birth.year + 28, 2024))),
                }
            ]
            if rng.random() < 0.35
            else []
        )
        pets = [rng.choice(["cat", "dog", "fish", "parrot"])] if rng.random() < 0.3 else []
        custom = {"has_car": rng.random() < 0.5} if rng.random() < 0.6 else {}
        channel = rng.choices(reg_channels, cum_weights=reg_cum)[0]
        state = MemberState.ACTIVATED if rng.random() < 0.9 else MemberState.REGISTERED
        referrer = (
            rng.randrange(plan.start_id, member_id)
            if member_id > plan.start_id and rng.random() < 0.05
            else None
        )
        yield (
            member_id,
            f"DEMO-{member_id}",
            last,
            first,
            middle,
            Gender.FEMALE if female else Gender.MALE,
            birth,
            phone,
            phone_raw,
            phone_status,
            operator_,
            region_,
            email,
            email_raw,
            email_status,
            f"г. {city}, ул. Ленина, д. {rng.randint(1, 120)}, кв. {rng.randint(1, 300)}",
            city,
            zones[city],
            "city",
            children,
            pets,
            custom,
            registered,
            channel,
            state,
            "",
            rng.choice(statuses) if statuses else None,
            f"R{member_id:09X}",
            referrer,
            "ru",
            registered,
            registered,
        )


def card_number_for(member_id: int) -> str:
    """The demo card number of a member: prefix, zero-padded id, Luhn digit."""
    cfg = settings.LOYALTY
    body_len = cfg["CARD_NUMBER_LENGTH"] - len(cfg["CARD_NUMBER_PREFIX"]) - 1
    body = cfg["CARD_NUMBER_PREFIX"] + f"{member_id:0{body_len}d}"[-body_len:]
    return body + luhn_check_digit(body)


def card_number_sql(column: str) -> str:
    """``card_number_for`` as a portable SQL expression over an integer column, so cards
    are made with one ``INSERT ... SELECT`` (``%`` doubled: the statement has parameters)."""
    cfg = settings.LOYALTY
    prefix = cfg["CARD_NUMBER_PREFIX"]
    body_len = cfg["CARD_NUMBER_LENGTH"] - len(prefix) - 1
    digits = [int(c) for c in prefix]
    # Digit k of the id from the right: (id / 10^k) % 10; the body is prefix + id digits.
    terms = []
    body = [("const", d) for d in digits] + [("id", k) for k in range(body_len - 1, -1, -1)]
    for i, (kind, value) in enumerate(reversed(body)):
        doubled = i % 2 == 0
        if kind == "const":
            d = value * 2 if doubled else value
            terms.append(str(d - 9 if d > 9 else d))
        else:
            digit = f"(({column} / {10**value}) %% 10)"
            terms.append(
                f"(CASE WHEN {digit} * 2 > 9 THEN {digit} * 2 - 9 ELSE {digit} * 2 END)" if doubled else digit
            )
    check = f"((10 - ({' + '.join(terms)}) %% 10) %% 10)"
    padded = f"SUBSTR('{'0' * body_len}' || CAST({column} AS TEXT), -{body_len})"
    if connection.vendor == "postgresql":
        padded = f"RIGHT(LPAD({column}::text, {body_len}, '0'), {body_len})"
    return f"'{prefix}' || {padded} || CAST({check} AS TEXT)"


def _copy_rows(table: str, columns: list[str], rows: Iterable[tuple], json_columns: set[int]) -> int:
    """PostgreSQL COPY through psycopg 3; JSON columns are passed as text."""
    import json

    n = 0
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    dumps = json.dumps
    with connection.cursor() as cur, cur.cursor.copy(sql) as copy:
        write = copy.write_row
        if json_columns:
            for row in rows:
                row = list(row)
                for i in json_columns:
                    row[i] = dumps(row[i], ensure_ascii=False)
                write(row)
                n += 1
        else:
            for row in rows:
                write(row)
                n += 1
    return n


def _insert_rows(model, columns: list[str], rows: Iterable[tuple], batch: int = 2000) -> int:
    if connection.vendor == "postgresql":
        fields = [model._meta.get_field(c) for c in columns]
        json_columns = {i for i, f in enumerate(fields) if f.get_internal_type() == "JSONField"}
        return _copy_rows(model._meta.db_table, [f.column for f in fields], rows, json_columns)
    n, buf = 0, []
    for row in rows:
        buf.append(model(**dict(zip(columns, row, strict=True))))
        if len(buf) >= batch:
            model.objects.bulk_create(buf)
            n, buf = n + len(buf), []
    if buf:
        model.objects.bulk_create(buf)
        n += len(buf)
    return n


def _reset_sequences(*models) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cur:
        for model in models:
            table = model._meta.db_table
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 1))"
            )


@transaction.atomic
def members_load(plan: MemberPlan) -> int:
    """Load ``plan.count`` members with their cards and consents, set-wise."""
    statuses = list(Status.objects.values_list("pk", flat=True))
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            # Check foreign keys row by row while copying instead of queueing millions of
            # deferred checks for the commit.
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    n = _insert_rows(Member, MEMBER_COLUMNS, members_generate(plan, statuses))
    lo, hi = plan.start_id, plan.start_id + plan.count - 1
    at = connection.ops.adapt_datetimefield_value(plan.now or timezone.now())
    with connection.cursor() as cur:
        # One activated card per member, numbered from the member id (INSERT ... SELECT).
        cur.execute(
            f"INSERT INTO {Card._meta.db_table} (number, kind, state, member_id, issued_at, activated_at, "
            f"block_reason) SELECT {card_number_sql('id')}, 'physical', 'activated', id, %s, %s, '' "
            f"FROM {Member._meta.db_table} WHERE id BETWEEN %s AND %s",
            [at, at, lo, hi],
        )
        # Consents: SMS and email are asked at registration, push and Viber of app users
        # only; a deterministic hash of the member id and the seed decides each answer.
        channels = [
            (ContactChannel.SMS, "registration", 100, 80),
            (ContactChannel.EMAIL, "registration", 100, 60),
            (ContactChannel.PUSH, "mobile_app", 25, 70),
            (ContactChannel.VIBER, "mobile_app", 25, 40),
        ]
        selects, params = [], []
        for n_channel, (channel, source, asked, granted) in enumerate(channels, start=1):
            ask = f"((id * 2654435761 + {plan.seed}) %% 100) < {asked}"
            grant = f"((id * {7919 + 104 * n_channel} + {plan.seed * 31}) %% 100) < {granted}"
            selects.append(
                f"SELECT id, %s, {grant}, %s, %s FROM {Member._meta.db_table} "
                f"WHERE id BETWEEN %s AND %s AND {ask}"
            )
            params += [channel, at, source, lo, hi]
        cur.execute(
            f"INSERT INTO {Consent._meta.db_table} (member_id, channel, granted, changed_at, source) "
            + " UNION ALL ".join(selects),
            params,
        )
    _reset_sequences(Member, Card, Consent)
    return n


def history_load(*, member_ids: list[int], seed: int = 42, now: dt.datetime | None = None) -> dict:
    """A year of receipts for the given members, with bonus payments and accruals through
    the ledger services at the receipt's own time, then the nightly runs."""
    rng = random.Random(seed + 2)
    now = now or timezone.now()
    stores = list(PointOfSale.objects.all())
    offline = [s for s in stores if s.kind == SalesChannel.OFFLINE]
    products = list(Product.objects.all())
    methods = {m.code: m for m in PaymentMethod.objects.all()}
    currency = ledger.currency_default()
    members = {m.pk: m for m in Member.objects.filter(pk__in=member_ids)}
    counts = {"receipts": 0, "accrued": Decimal(0), "spent": Decimal(0)}
    next_receipt = (Receipt.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    for chunk_start in range(0, len(member_ids), 200):
        # One transaction per chunk: the history of 200 members commits at once.
        with transaction.atomic():
            for member_id in member_ids[chunk_start : chunk_start + 200]:
                next_receipt = _member_history(
                    members[member_id],
                    rng,
                    now,
                    stores,
                    offline,
                    products,
                    methods,
                    currency,
                    counts,
                    next_receipt,
                )
    _reset_sequences(Receipt)
    ledger.bonuses_activate(now=now)
    ledger.bonuses_expire(now=now)
    return counts


def _member_history(
    member, rng, now, stores, offline, products, methods, currency, counts, next_receipt
) -> int:
    account = ledger.account_get_or_create(member=member, currency=currency)
    start = max(member.registered_at, now - dt.timedelta(days=365))
    visits = sorted(
        start + dt.timedelta(seconds=rng.randrange(max(1, int((now - start).total_seconds()))))
        for _ in range(rng.choice([0, 1, 2, 3, 4, 6, 8, 12, 18]))
    )
    receipts, lines, payments, events = [], [], [], []
    earned_lots, paid_total = [], Decimal(0)
    for when in visits:
        store = rng.choices([rng.choice(offline), stores[-2], stores[-1]], [80, 12, 8])[0]
        basket = rng.sample(products, rng.randint(1, 6))
        receipt = Receipt(
            pk=next_receipt,
            point_of_sale=store,
            external_id=f"D{next_receipt}",
            member=member,
            state=ReceiptState.CONFIRMED,
            purchased_at=when,
            confirmed_at=when,
        )
        next_receipt += 1
        amount = Decimal(0)
        for pos, product in enumerate(basket, 1):
            qty = Decimal(rng.randint(1, 3))
            line_amount = product.price * qty
            amount += line_amount
            lines.append(
                ReceiptLine(
                    receipt=receipt,
                    position=pos,
                    product=product,
                    sku=product.sku,
                    name=product.name,
                    quantity=qty,
                    price=product.price,
                    amount=line_amount,
                )
            )
        receipt.amount = receipt.total = amount
        receipts.append(receipt)
    Receipt.objects.bulk_create(receipts)
    ReceiptLine.objects.bulk_create(lines)
    for receipt in receipts:
        when = receipt.purchased_at
        label = f"Receipt {receipt.external_id}"
        # A plausible payment from what should be spendable by now; the ledger decides.
        spendable = (
            sum((a for (start, end, a) in earned_lots if start <= when < end), Decimal(0)) - paid_total
        )
        pay = Decimal(0)
        if spendable >= 100 and rng.random() < 0.35:
            pay = min(spendable, (receipt.total * Decimal("0.3")).quantize(Decimal(1)))
        if pay > 0:
            try:
                ledger.bonus_spend(
                    account=account,
                    amount=pay,
                    at=when,
                    source=ledger.Source(
                        type=SourceType.RECEIPT,
                        id=str(receipt.pk),
                        label=label,
                        receipt=receipt,
                    ),
                )
            except ledger.InsufficientBonuses:
                pay = Decimal(0)
        paid_total += pay
        earned = ledger.points((receipt.total - pay) * Decimal("0.05"))
        if earned > 0:
            ledger.bonus_accrue(
                account=account,
                amount=earned,
                at=when,
                activates_at=when + dt.timedelta(days=14),
                expires_at=when + dt.timedelta(days=180),
                source=ledger.Source(
                    type=SourceType.RECEIPT, id=str(receipt.pk), label=label, receipt=receipt
                ),
            )
            earned_lots.append((when + dt.timedelta(days=14), when + dt.timedelta(days=180), earned))
        receipt.bonus_paid, receipt.bonus_accrued = pay, earned
        method = (
            methods["online"]
            if receipt.point_of_sale.kind != SalesChannel.OFFLINE
            else methods[rng.choice(["cash", "card", "card"])]
        )
        payments.append(ReceiptPayment(receipt=receipt, method=method, amount=receipt.total - pay))
        if pay:
            payments.append(ReceiptPayment(receipt=receipt, method=methods["bonuses"], amount=pay))
        events.append(
            MemberEvent(
                event_type="purchase_completed",
                member=member,
                occurred_at=when,
                point_of_sale=receipt.point_of_sale,
                channel=receipt.point_of_sale.kind,
                payload={"receipt_id": receipt.pk, "total": str(receipt.total)},
            )
        )
        counts["accrued"] += earned
        counts["spent"] += pay
    Receipt.objects.bulk_update(receipts, ["bonus_paid", "bonus_accrued"])
    ReceiptPayment.objects.bulk_create(payments)
    events.append(
        MemberEvent(
            event_type="registration_completed",
            member=member,
            occurred_at=member.registered_at,
            channel=member.registration_channel,
        )
    )
    if member.registration_channel == RegistrationChannel.MOBILE_APP or rng.random() < 0.2:
        events.append(
            MemberEvent(
                event_type="app_installed",
                member=member,
                channel="mobile_app",
                occurred_at=min(now, member.registered_at + dt.timedelta(days=rng.randint(0, 60))),
            )
        )
    if rng.random() < 0.1:
        events.append(
            MemberEvent(
                event_type="social_profile_linked",
                member=member,
                channel="vk",
                occurred_at=min(now, member.registered_at + dt.timedelta(days=rng.randint(0, 90))),
            )
        )
    MemberEvent.objects.bulk_create(events)
    counts["receipts"] += len(receipts)
    return next_receipt
