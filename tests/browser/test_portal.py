"""A member uses the personal account (/account/) in a real browser, on a phone and on a
desktop: signs in with the code read from the delivered SMS, checks the balance and the
history against the ledger, picks personal products, finds the offers meant for them,
changes subscriptions, writes to support with a file and reads the answer an operator
gave in the back office.

Every page visited is saved as a screenshot
(``VAR_DIR/screenshots/portal-<width>-<flow>-<page>.png``);
at phone width each page is also checked not to scroll sideways."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db.models import Sum
from django.utils import timezone

from communications.models import (
    CategoryOptOut,
    Feedback,
    FeedbackAuthor,
    FeedbackStatus,
    MailingCategory,
    Message,
    SubscriptionChange,
    UnsubscribeReason,
)
from communications.services.delivery import dispatch_batch
from gateways.models import Gateway
from gateways.services import gateway_save
from loyalty import roles
from loyalty.models import BonusAccount, Consent, LedgerEntry
from loyalty.services import ledger
from loyalty.services.members import consent_set
from loyalty.services.receipts import AccrualInput, ConfirmInput, LineInput, receipt_confirm, receipt_record
from offers.models import PersonalProduct, PersonalProductProgram
from portal.models import TargetedContent
from segments.models import AudienceMember, TargetAudience
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path(settings.VAR_DIR) / "screenshots"
PHONE = "phone"
DESKTOP = "desktop"
VIEWPORTS = {
    PHONE: {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
    DESKTOP: {"viewport": {"width": 1280, "height": 900}},
}
SECTIONS = [
    ("Home", "/account/"),
    ("History", "/account/history/"),
    ("Offers", "/account/offers/"),
    ("Personal offers", "/account/offers/personal/"),
    ("Personal products", "/account/products/"),
    ("Profile", "/account/profile/"),
    ("Subscriptions", "/account/subscriptions/"),
    ("Support", "/account/feedback/"),
]


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def no_worker(monkeypatch):
    """No Celery worker runs here: the dispatch tasks the pages ask for are only noted; the
    test runs the dispatcher itself, as the worker would."""
    from communications import tasks

    asked: list[int] = []
    monkeypatch.setattr(tasks.dispatch, "delay", lambda gateway_id: asked.append(gateway_id))
    return asked


@pytest.fixture
def sms_gateway(db):
    return gateway_save(gateway=Gateway(name="SMS outbox", provider="file_sms", price="2.5"), config={})


@pytest.fixture
def olga(db):
    return factories.MemberFactory(first_name="Olga", last_name="Smirnova", language="en")


@pytest.fixture(params=[PHONE, DESKTOP])
def width(request):
    return request.param


class SidewaysScroll(AssertionError):
    """A page is wider than the phone's screen."""


class Screens:
    """Saves each visited page and, at phone width, notes a page that scrolls sideways
    (``fits`` fails on them at the end, so the rest of the flow is still checked)."""

    def __init__(self, page, width: str, flow: str):
        self.page, self.width, self.flow = page, width, flow
        self.too_wide_pages: list[str] = []

    def take(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"portal-{self.width}-{self.flow}-{name}.png"), full_page=True)
        if self.width == PHONE:
            scroll, inner, client = self.page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth,"
                " document.documentElement.clientWidth]"
            )
            width = VIEWPORTS[PHONE]["viewport"]["width"]
            # a phone browser zooms out to fit a page wider than the screen: innerWidth grows
            if not (scroll <= min(inner, client) and inner == width):
                self.too_wide_pages.append(
                    f"{name} ({self.page.url}) is {scroll}px wide on a {width}px screen"
                    f" (innerWidth {inner}); too wide: {self.too_wide(width)}"
                )

    def too_wide(self, width: int) -> list[str]:
        """The innermost elements reaching past the screen's right edge."""
        return self.page.evaluate(
            """width => [...document.querySelectorAll('body *')]
                .filter(el => !el.closest('nav.sections'))  // scrolls inside itself
                .filter(el => el.getBoundingClientRect().right > width + 0.5)
                .filter(el => ![...el.children].some(c => c.getBoundingClientRect().right > width + 0.5))
                .slice(0, 8)
                .map(el => `<${el.tagName.toLowerCase()} class="${el.className}">`
                     + ` right=${Math.round(el.getBoundingClientRect().right)}`
                     + ` "${el.textContent.trim().slice(0, 40)}"`)""",
            width,
        )


def fits(*screens: Screens) -> None:
    problems = [problem for each in screens for problem in each.too_wide_pages]
    if problems:
        raise SidewaysScroll("pages scroll sideways on a phone:\n" + "\n".join(problems))


@pytest.fixture
def open_page(browser_page, width):
    """``open_page(flow)`` -> (page, screens): a fresh browser context at the test's width
    (more than one may be open, e.g. a member and an operator)."""
    browser = browser_page.context.browser
    contexts = []

    def make(flow: str, at: str | None = None):
        at = at or width
        context = browser.new_context(locale="en-US", **VIEWPORTS[at])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.js_errors = []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        return page, Screens(page, at, flow)

    yield make
    for context in contexts:
        context.close()


# --- helpers ----------------------------------------------------------------------------------
def number(text: str) -> Decimal:
    """A number as the pages print it: "1,330.00", "+100.00", "−50.00"."""
    first = text.strip().splitlines()[0]
    cleaned = first.replace("\u2212", "-").replace(",", "").replace("\xa0", "").replace(" ", "")
    return Decimal(cleaned.lstrip("+"))


def delivered_code(gateway: Gateway, address: str) -> str:
    """Run the dispatcher as the worker would and read the code from the SMS file the
    gateway wrote: what the member reads on their phone."""
    dispatch_batch(gateway=gateway)
    found = []
    for path in sorted((Path(settings.OUTBOX_DIR) / "sms").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if f"To: {address}\n" in text:
            found += re.findall(r"^Text: (\d{6}) is your .* sign-in code", text, flags=re.MULTILINE)
    assert len(found) == 1, f"expected one sign-in code delivered to {address}, found {found}"
    return found[0]


def sign_in(page, screens: Screens, base: str, member, gateway: Gateway, start: str = "/account/"):
    # an unsigned visitor is sent to the sign-in page
    page.goto(base + start)
    page.wait_for_url("**/account/sign-in/**")
    screens.take("sign-in")
    # a phone number written the way people write it
    page.fill(
        "#id_login", f"8 ({member.phone[2:5]}) {member.phone[5:8]}-{member.phone[8:10]}-{member.phone[10:]}"
    )
    page.get_by_role("button", name="Get a code").click()
    page.wait_for_url("**/account/sign-in/code/")
    assert "We sent a code to" in page.inner_text("main")
    screens.take("code")
    page.fill("#id_code", delivered_code(gateway, member.phone))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(base + start)
    page.wait_for_selector("nav.sections")


def click_and_wait(page, locator, url) -> None:
    """Click a link and wait for the page it leads to (``url``: a glob or a predicate)."""
    with page.expect_navigation(url=url):
        locator.click()


def saved(page) -> str:
    """Wait for the page after a form's redirect and return its success message."""
    return page.wait_for_selector("ul.messages li.success").inner_text()


def png(width: int = 1200, height: int = 500, color=(45, 91, 227)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def purchase(member, shop, external_id: str, total: str, bonus: str = "0", pay_with_bonuses: str = "0"):
    receipt = receipt_record(
        point_of_sale=shop,
        external_id=external_id,
        lines=[LineInput(sku="MILK", quantity=Decimal(2), price=Decimal(total) / 2, name="Milk")],
        member=member,
    )
    accruals = [AccrualInput(amount=Decimal(bonus))] if Decimal(bonus) else []
    return receipt_confirm(
        receipt=receipt, confirm=ConfirmInput(bonus_payment=Decimal(pay_with_bonuses), accruals=accruals)
    )


# --- signing in, the balance and the history ---------------------------------------------------
@pytest.mark.parametrize(
    "width",
    [
        PHONE,
        DESKTOP,
    ],
)
def test_member_signs_in_with_the_delivered_code_and_sees_balance_and_history_matching_the_ledger(
    live_server, open_page, width, no_worker, sms_gateway, olga
):
    # given: two purchases (one partly paid with bonuses), an operator's correction and
    # bonuses that become available in three days
    shop = factories.PointOfSaleFactory(name="Shop on Tverskaya")
    purchase(olga, shop, "R-1001", "1000", bonus="100")
    purchase(olga, shop, "R-1002", "2500", bonus="250", pay_with_bonuses="50")
    account = ledger.account_get_or_create(member=olga)
    clerk = User.objects.create_user(username="clerk", is_staff=True)
    ledger.bonus_adjust(account=account, amount=Decimal(-20), reason="Goodwill correction", operator=clerk)
    ledger.bonus_accrue(
        account=account,
        amount=Decimal(40),
        source=ledger.Source(type="offer"),
        activates_at=timezone.now() + dt.timedelta(days=3),
    )
    factories.CardFactory(member=olga, number="7800123456782")
    page, screens = open_page("signin")
    base = live_server.url

    # when: she signs in with the code from the SMS
    sign_in(page, screens, base, olga, sms_gateway)

    # then: home greets her and shows the ledger's balance, the pending bonuses and her card
    screens.take("home")
    assert "Hello, Olga!" in page.inner_text("h1")
    entries = LedgerEntry.objects.filter(account__member=olga)
    totals = entries.aggregate(available=Sum("available_delta"), pending=Sum("pending_delta"))
    stored = BonusAccount.objects.get(pk=account.pk)
    shown = number(page.inner_text(f"[data-testid=balance-{account.currency.code}]"))
    assert shown == totals["available"] == stored.available == Decimal("280")
    balance_card = page.inner_text("section[aria-labelledby=balance-h]")
    assert "Will become available" in balance_card and "40.00" in balance_card
    assert totals["pending"] == Decimal("40")
    assert page.inner_text("[data-testid=card-number]") == "7800 1234 5678 2"
    assert page.locator(".qr img").evaluate("img => img.complete && img.naturalWidth > 0")

    # when: she opens the history from the sections menu
    click_and_wait(page, page.locator("nav.sections").get_by_role("link", name="History"), "**/history/")
    screens.take("history-purchases")
    # then: her purchases, newest first, with the bonuses earned and spent on each
    rows = page.locator("[data-testid=receipt]")
    assert rows.count() == 2
    newest = rows.nth(0).locator("td")
    assert "Shop on Tverskaya" in newest.nth(0).inner_text()
    assert number(newest.nth(1).inner_text().split()[0]) == Decimal("2500")
    assert number(newest.nth(2).inner_text()) == Decimal("250")
    assert number(newest.nth(3).inner_text()) == Decimal("-50")
    assert number(rows.nth(1).locator("td").nth(2).inner_text()) == Decimal("100")

    # when: she opens the newer purchase
    click_and_wait(page, newest.nth(0).get_by_role("link"), "**/history/receipts/*/")
    screens.take("receipt")
    # then
    receipt_text = page.inner_text("main")
    assert "R-1002" in receipt_text and "Milk" in receipt_text
    assert page.locator("[data-testid=line]").count() == 1

    # when: she looks at the bonus movements
    page.go_back()
    page.wait_for_url("**/history/")
    click_and_wait(
        page, page.get_by_role("link", name="Bonus movements"), lambda url: url.endswith("tab=movements")
    )
    screens.take("history-movements")
    # then: one row per ledger entry; the available ones add up to the balance
    movements = page.locator("[data-testid=movement]")
    assert movements.count() == entries.count()
    available, pending = Decimal(0), Decimal(0)
    for i in range(movements.count()):
        cell = movements.nth(i).locator("td").nth(2).inner_text()
        if "pending" in cell:
            pending += number(cell)
        else:
            available += number(cell)
    assert available == totals["available"] and pending == totals["pending"]
    text = page.inner_text("main")
    assert "For purchase R-1001" in text and "Goodwill correction" in text

    # and the code was sent as a transactional message and worked once
    (code_message,) = Message.objects.filter(address=olga.phone)
    assert code_message.purpose == "transactional" and code_message.status == "delivered"
    assert no_worker == [sms_gateway.pk]
    assert page.js_errors == []
    fits(screens)


@pytest.mark.parametrize("width", [PHONE])
def test_sections_menu_is_usable_on_a_phone(live_server, open_page, width, no_worker, sms_gateway, olga):
    page, screens = open_page("sections")
    sign_in(page, screens, live_server.url, olga, sms_gateway)
    nav = page.locator("nav.sections[aria-label=Sections]")
    links = nav.get_by_role("link")
    assert [links.nth(i).inner_text().strip() for i in range(links.count())] == [n for n, _ in SECTIONS]
    for name, path in SECTIONS:
        link = nav.get_by_role("link", name=name, exact=True)
        # the menu scrolls sideways inside itself, the page does not; each item is big
        # enough to tap and fully on screen once scrolled to
        link.scroll_into_view_if_needed()
        box = link.bounding_box()
        assert box is not None and box["height"] >= 40, f"{name}: {box}"
        assert box["x"] >= -1 and box["x"] + box["width"] <= 391, f"{name} is cut off: {box}"
        link.tap()
        page.wait_for_url(live_server.url + path)
        current = page.locator("nav.sections[aria-label=Sections] a[aria-current=page]")
        assert current.inner_text().strip() == name
        screens.take(name.lower().replace(" ", "-"))
    assert page.js_errors == []
    fits(screens)


# --- personal products --------------------------------------------------------------------------
def test_member_picks_personal_products(live_server, open_page, width, no_worker, sms_gateway, olga):
    # given: a list of four products, two to pick
    now = timezone.now()
    names = ["Oat milk 1 l", "Rye bread", "Greek yoghurt 2%", "Arabica coffee beans 1 kg"]
    products = [factories.ProductFactory(name=name) for name in names]
    program = PersonalProductProgram.objects.create(
        name="Your favourites in November",
        description="Pick the products you buy most: they earn triple bonuses all month.",
        max_picks=2,
        starts_at=now - dt.timedelta(days=1),
        ends_at=now + dt.timedelta(days=30),
    )
    program.products.set(products)
    page, screens = open_page("products")
    sign_in(page, screens, live_server.url, olga, sms_gateway, start="/account/products/")
    screens.take("list")
    form = page.locator(f"section[aria-labelledby=list-{program.pk}] form")

    # when: she ticks three
    for name in names[:3]:
        form.get_by_label(name).check()
    form.get_by_role("button", name="Save my choice").click()
    # then: told the limit, nothing saved
    error = page.wait_for_selector("ul.messages li.error").inner_text()
    assert "at most 2" in error
    screens.take("too-many")
    assert not PersonalProduct.objects.filter(member=olga).exists()

    # and her ticks are still there to correct
    form = page.locator(f"section[aria-labelledby=list-{program.pk}] form")
    for name in names[:3]:
        assert form.get_by_label(name).is_checked()

    # when: she keeps two
    form.get_by_label(names[0]).uncheck()
    form.get_by_label(names[2]).uncheck()
    form.get_by_label(names[3]).check()
    form.get_by_role("button", name="Save my choice").click()
    # then
    assert "Your choice is saved." in saved(page)
    screens.take("saved")
    picked = PersonalProduct.objects.filter(member=olga, program=program)
    assert set(picked.values_list("product__name", flat=True)) == {names[1], names[3]}
    checked = page.locator("input[data-testid=product]:checked")
    assert sorted(checked.evaluate_all("els => els.map(e => e.value)")) == sorted(
        str(p.pk) for p in (products[1], products[3])
    )
    assert page.js_errors == []
    fits(screens)


# --- offers ------------------------------------------------------------------------------------
def test_member_sees_offers_for_everyone_and_for_her_audience(
    live_server, open_page, width, no_worker, sms_gateway, olga
):
    from django.core.files.base import ContentFile

    # given: a material for everyone (with a picture and a link), one for an audience she
    # is in and one for an audience she is not in
    vip = TargetAudience.objects.create(name="Coffee lovers")
    AudienceMember.objects.create(audience=vip, member=olga)
    others = TargetAudience.objects.create(name="Pet owners")
    everyone = TargetedContent(
        title="Autumn sale: −20% on everything",
        text="Until the end of the month in every shop.\nShow your card at the till.",
        link="https://example.com/autumn",
        link_label="See the sale",
        published=True,
    )
    everyone.image.save("autumn.png", ContentFile(png()), save=True)
    TargetedContent.objects.create(
        title="Olga, double bonuses on coffee", text="Just for you this week.", audience=vip, published=True
    )
    TargetedContent.objects.create(title="Cat food week", audience=others, published=True)
    page, screens = open_page("offers")
    sign_in(page, screens, live_server.url, olga, sms_gateway)

    # then: home shows both of hers
    screens.take("home")
    home_offers = page.locator("[data-testid=offer] h3").all_inner_texts()
    assert set(home_offers) == {"Autumn sale: −20% on everything", "Olga, double bonuses on coffee"}

    # when: Offers
    nav = page.locator("nav.sections")
    click_and_wait(page, nav.get_by_role("link", name="Offers", exact=True), "**/account/offers/")
    screens.take("offers")
    # then: the one for everyone, with its picture and link
    assert page.locator("[data-testid=offer] h3").all_inner_texts() == ["Autumn sale: −20% on everything"]
    image = page.locator("[data-testid=offer] img")
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth === 1200", arg=image.element_handle())
    assert page.get_by_role("link", name="See the sale").get_attribute("href") == "https://example.com/autumn"

    # when: Personal offers
    click_and_wait(page, nav.get_by_role("link", name="Personal offers"), "**/account/offers/personal/")
    screens.take("personal")
    # then: only the one for her audience
    assert page.locator("[data-testid=offer] h3").all_inner_texts() == ["Olga, double bonuses on coffee"]
    assert "Cat food week" not in page.inner_text("main")
    assert page.js_errors == []
    fits(screens)


# --- subscriptions -----------------------------------------------------------------------------
def test_member_unsubscribes_from_a_channel_and_a_category(
    live_server, open_page, width, no_worker, sms_gateway, olga
):
    # given: SMS and email allowed, two mailing categories, the reasons dictionary
    for channel in ("sms", "email"):
        consent_set(member=olga, channel=channel, granted=True, source="test")
    news = MailingCategory.objects.create(
        code="news", name="News", description="New shops and products", order=1
    )
    sales = MailingCategory.objects.create(code="sales", name="Sales", order=2)
    reason, _created = UnsubscribeReason.objects.get_or_create(
        text="Too many messages", defaults={"order": 1}
    )
    page, screens = open_page("subscriptions")
    sign_in(page, screens, live_server.url, olga, sms_gateway, start="/account/subscriptions/")
    screens.take("before")
    assert page.is_checked("[data-testid=channel-sms]") and page.is_checked("[data-testid=channel-email]")
    assert page.is_checked("[data-testid=category-news]") and page.is_checked("[data-testid=category-sales]")

    # when: she turns off SMS and the news, and says why
    page.uncheck("[data-testid=channel-sms]")
    page.uncheck("[data-testid=category-news]")
    page.get_by_text("If you unsubscribe, tell us why").click()
    page.get_by_label("Too many messages").check()
    page.fill("#id_comment", "Once a week is enough")
    screens.take("filled")
    page.get_by_role("button", name="Save", exact=True).click()

    # then
    assert "Your subscriptions are saved." in saved(page)
    screens.take("saved")
    consents = dict(Consent.objects.filter(member=olga).values_list("channel", "granted"))
    assert consents["sms"] is False and consents["email"] is True
    assert list(CategoryOptOut.objects.filter(member=olga).values_list("category", flat=True)) == [news.pk]
    assert not CategoryOptOut.objects.filter(member=olga, category=sales).exists()
    change = SubscriptionChange.objects.get(member=olga, channel="sms")
    assert change.reason == reason and change.comment == "Once a week is enough"
    assert change.source == "personal_account"
    assert not page.is_checked("[data-testid=channel-sms]") and page.is_checked("[data-testid=channel-email]")
    assert not page.is_checked("[data-testid=category-news]") and page.is_checked(
        "[data-testid=category-sales]"
    )
    assert page.js_errors == []
    fits(screens)


# --- support -----------------------------------------------------------------------------------
def test_member_writes_to_support_with_a_file_and_reads_the_operators_answer(
    live_server, open_page, width, no_worker, sms_gateway, olga
):
    base = live_server.url
    page, screens = open_page("support")
    sign_in(page, screens, base, olga, sms_gateway, start="/account/feedback/")
    screens.take("empty")

    # when: she writes with a photo of her receipt
    page.fill("#id_subject", "Bonuses for my purchase are missing")
    page.fill("#id_text", "I bought groceries yesterday in the shop on Tverskaya, but got no bonuses.")
    page.set_input_files(
        "#id_attachment", {"name": "receipt.png", "mimeType": "image/png", "buffer": png(60, 90)}
    )
    page.get_by_role("button", name="Send").click()
    page.wait_for_url("**/account/feedback/*/")
    assert "Your message is sent to support." in saved(page)
    screens.take("sent")
    # then
    thread = Feedback.objects.get(member=olga)
    assert thread.status == FeedbackStatus.NEW and thread.subject == "Bonuses for my purchase are missing"
    first = thread.messages.get()
    assert first.attachment_name == "receipt.png" and first.attachment.read().startswith(b"\x89PNG")

    # when: a contact-center operator answers in the back office
    operator = User.objects.create_user(
        username="oleg", password="s3cret-pass", is_staff=True, first_name="Oleg", last_name="Petrov"
    )
    operator.groups.add(Group.objects.get(name=roles.OPERATOR))
    desk, desk_screens = open_page("support-operator", at=DESKTOP)
    change = f"/admin/communications/feedback/{thread.pk}/change/"
    desk.goto(f"{base}/admin/login/?next={change}")
    desk.fill("#id_username", "oleg")
    desk.fill("#id_password", "s3cret-pass")
    desk.click("input[type=submit]")
    desk.wait_for_url(base + change)
    assert "got no bonuses" in desk.inner_text(".feedback-member")
    assert desk.get_by_role("link", name="receipt.png").is_visible()
    desk.fill("#id_answer", "Sorry about that: we added 100 bonuses to your account.")
    desk_screens.take("answer")
    desk.click("input[name=_answer]")
    assert "The answer is sent" in desk.wait_for_selector("ul.messagelist").inner_text()
    desk_screens.take("answered")
    thread.refresh_from_db()
    assert thread.status == FeedbackStatus.ANSWERED and thread.assigned_to == operator

    # then: she sees the answer in her thread and the status
    page.reload()
    answer = page.wait_for_selector("[data-testid=message-operator]")
    assert "we added 100 bonuses" in answer.inner_text()
    assert page.inner_text("h1 .badge").strip() == "answered"
    screens.take("answered")
    # and can download what she sent
    with page.expect_download() as download:
        page.get_by_role("link", name="receipt.png").click()
    assert download.value.suggested_filename == "receipt.png"
    # and the list shows the thread as answered
    click_and_wait(page, page.get_by_role("link", name="← Support"), "**/account/feedback/")
    screens.take("list")
    assert page.inner_text("[data-testid=thread] .badge").strip() == "answered"
    # and she was told there is an answer
    assert thread.messages.filter(author=FeedbackAuthor.OPERATOR).count() == 1
    assert Message.objects.filter(member=olga, occurrence__startswith="feedback-answer:").exists()
    assert page.js_errors == [] and desk.js_errors == []
    fits(screens, desk_screens)
