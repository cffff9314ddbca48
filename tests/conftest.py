import pytest
from django.conf import settings

from tests import factories

POSTGRES_REASON = "needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)"


def pytest_collection_modifyitems(config, items):
    if settings.DATABASE_IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason=POSTGRES_REASON)
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return f"database: {db}; broker: {settings.CELERY_BROKER_URL.split(':', 1)[0]}"


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language (a request through LocaleMiddleware
    leaves its language active in the thread)."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_offers():
    from loyalty.refcache import refcache_clear
    from offers.selectors import offers_cache_clear

    offers_cache_clear()
    refcache_clear()
    yield


@pytest.fixture(autouse=True)
def _isolated_dirs(settings, tmp_path):
    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.EMAIL_FILE_PATH = tmp_path / "outbox" / "email"
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def member(db):
    return factories.MemberFactory()


@pytest.fixture
def point_of_sale(db):
    return factories.PointOfSaleFactory()


@pytest.fixture
def currency(db):
    from loyalty.services.ledger import currency_default

    return currency_default()


@pytest.fixture
def account(member, currency):
    from loyalty.services.ledger import account_get_or_create

    return account_get_or_create(member=member, currency=currency)
