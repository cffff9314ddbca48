"""The member API for the mobile app: one view per operation. Each parses its input with
a serializer, calls the portal, loyalty, offers or communications service and renders the
result; errors leave as problem details (``loyalty.api.problems``).

Every object is looked up within the signed-in member's own (``receipt_of``,
``feedback_of``, ...): another member's id is answered like an unknown one (404). Phones
and emails travel in request bodies only, never in URLs, and are not logged."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import FileResponse, Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from communications.models import (
    FeedbackMessage,
    FeedbackTopic,
    MailingCategory,
    UnsubscribeReason,
)
from communications.services import feedback as feedback_services
from communications.services.devices import device_register, device_unregister
from communications.services.subscriptions import category_set, channel_set, subscriptions_of
from loyalty.api.parsers import JSONParser
from loyalty.api.problems import problem, problem_exception_handler
from loyalty.api.renderers import FastJSONRenderer
from loyalty.models import Card, Member, Receipt, RegistrationChannel
from loyalty.models.ledger import LedgerEntry
from loyalty.services.cards import card_bind
from loyalty.services.errors import DomainError
from loyalty.services.members import member_update
from offers.models import PersonalProductProgram
from offers.personal import picks_of, picks_set, program_products, programs_open
from portal.api import serializers as s
from portal.api.authentication import IsMember, MemberTokenAuthentication
from portal.models import CodePurpose, Placement
from portal.services import account, content, profile
from portal.services.auth import (
    CodeInvalid,
    CodeThrottled,
    code_request,
    config,
    sign_in,
    token_issue,
    token_revoke,
)

TAG = ["Member app"]
CHANNEL = RegistrationChannel.MOBILE_APP  # "mobile_app": events, consents and changes made here
RECEIPTS_PER_PAGE, MOVEMENTS_PER_PAGE, MAX_PER_PAGE = 20, 50, 100


class CardNotFound(DomainError):
    code = "card_not_found"
    title = gettext_lazy("There is no free card with this number.")
    http_status = 404


def member_exception_handler(exc, context):
    """The project's problem details, plus: a wrong code names the field ``code``, and a
    throttled code request carries ``Retry-After``."""
    if isinstance(exc, CodeInvalid):
        return problem(400, exc.code, str(exc.title), str(exc), errors={"code": [str(exc)]})
    response = problem_exception_handler(exc, context)
    if isinstance(exc, CodeThrottled) and response is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


class MemberView(APIView):
    """A view for the signed-in member (``Authorization: Bearer mt_...``)."""

    authentication_classes = [MemberTokenAuthentication]
    permission_classes = [IsMember]
    throttle_classes = []
    parser_classes = [JSONParser]
    renderer_classes = [FastJSONRenderer]

    def get_exception_handler(self):
        return member_exception_handler

    @property
    def member(self) -> Member:
        return self.request.user.member


class PublicView(MemberView):
    """Signing in and registering: no token yet. Code requests are throttled by the
    service, per address and per client IP address."""

    authentication_classes = []
    permission_classes = [AllowAny]


RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    location=OpenApiParameter.HEADER,
    response=[429],
    description="Seconds until a new code may be asked for.",
)


def _id(name: str) -> OpenApiParameter:
    return OpenApiParameter(name, {"type": "integer", "minimum": 0}, OpenApiParameter.PATH)


def _page(name: str, description: str, high: int | None = None) -> OpenApiParameter:
    schema = {"type": "integer", "minimum": 0 if name == "offset" else 1}
    if high is not None:
        schema["maximum"] = high
    return OpenApiParameter(name, schema, description=description)


def _valid(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _int_param(request, name: str, default: int | None, *, low: int, high: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [_("A whole number.")]}) from None
    if high is not None and not low <= value <= high:
        raise ValidationError({name: [_("Between %(low)s and %(high)s.") % {"low": low, "high": high}]})
    if value < low:
        raise ValidationError({name: [_("At least %(low)s.") % {"low": low}]})
    return value


def _code_sent(channel: str) -> Response:
    data = {
        "channel": channel,
        "retry_after": config("CODE_RESEND_SECONDS"),
        "expires_in": config("CODE_TTL_MINUTES") * 60,
    }
    return Response(s.CodeSentOut(data).data, status=status.HTTP_202_ACCEPTED)


def _token_out(member: Member, device_name: str) -> Response:
    token, key = token_issue(member=member, name=device_name)
    data = {"token": key, "expires_at": token.expires_at, "member_id": member.pk}
    return Response(s.TokenOut(data).data, status=status.HTTP_201_CREATED)


# --- signing in -----------------------------------------------------------------------
class CodeRequest(PublicView):
    @extend_schema(
        tags=TAG,
        operation_id="member_code_request",
        summary="Send a one-time code to a phone or email, to sign in or to register",
        description=(
            "Answered the same whether or not the address belongs to a member. A new code to "
            "the same address waits `retry_after` seconds; addresses and networks asking for "
            "too many codes are refused with 429 and a Retry-After header."
        ),
        request=s.CodeRequestIn,
        parameters=[RETRY_AFTER],
        responses={202: s.CodeSentOut, **s.problems(400, 429)},
        auth=[],
    )
    def post(self, request):
        v = _valid(s.CodeRequestIn, request.data)
        code_request(address=v["login"], purpose=v["purpose"], ip=_client_ip(request))
        return _code_sent(v["login"].channel)


class TokenCreate(PublicView):
    @extend_schema(
        tags=TAG,
        operation_id="member_token_create",
        summary="Exchange a sign-in code for the app's token",
        description="A wrong code counts; after a few the code is dead and a new one must be asked for.",
        request=s.TokenIn,
        responses={201: s.TokenOut, **s.problems(400)},
        auth=[],
    )
    def post(self, request):
        v = _valid(s.TokenIn, request.data)
        member = sign_in(address=v["login"], code=v["code"])
        return _token_out(member, v["device_name"])


class Register(PublicView):
    @extend_schema(
        tags=TAG,
        operation_id="member_register",
        summary="Register with a registration code; answers with the app's token",
        description=(
            "Creates the member (registration channel `mobile_app`) with the consents given and, "
            "optionally, binds a card the member holds that nobody has bound yet."
        ),
        request=s.RegisterIn,
        responses={201: s.TokenOut, **s.problems(400)},
        auth=[],
    )
    def post(self, request):
        v = dict(_valid(s.RegisterIn, request.data))
        fields = {
            k: v[k] for k in ("first_name", "last_name", "middle_name", "gender", "birth_date") if k in v
        }
        member = profile.register(
            address=v["login"],
            code=v["code"],
            channel=CHANNEL,
            consents=dict(v.get("consents") or {}),
            card_number=v.get("card_number", ""),
            **fields,
        )
        return _token_out(member, v["device_name"])


class Logout(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_logout",
        summary="Sign out: the token stops working",
        request=None,
        responses={204: None, **s.problems(401)},
    )
    def post(self, request):
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- profile ----------------------------------------------------------------------------
def _card(card: Card | None) -> dict | None:
    if card is None:
        return None
    return {
        "number": card.number,
        "kind": card.kind,
        "state": card.state,
        "issued_at": card.issued_at,
        "activated_at": card.activated_at,
    }


def _me(member: Member) -> dict:
    fields = ("id", "first_name", "middle_name", "last_name", "gender", "birth_date", "phone", "email")
    fields += ("city", "language", "time_zone", "custom_fields", "referral_code", "registered_at", "state")
    data = {name: getattr(member, name) for name in fields}
    data["status"] = account.status_section(member)
    data["card"] = _card(account.card_section(member))
    return s.MeOut(data).data


class Me(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_me",
        summary="The member: profile, status with the progress to the next one, and the card to show",
        responses={200: s.MeOut, **s.problems(401)},
    )
    def get(self, request):
        return Response(_me(self.member))

    @extend_schema(
        tags=TAG,
        operation_id="member_profile_update",
        summary="Change the profile",
        description="Phone and email change through `contacts/code` and `contacts/confirm`.",
        request=s.ProfileIn,
        responses={200: s.MeOut, **s.problems(400, 401)},
    )
    def patch(self, request):
        changes = dict(_valid(s.ProfileIn, request.data))
        answers = changes.pop("custom_fields", None)
        with transaction.atomic():
            member = member_update(member=self.member, channel=CHANNEL, **changes) if changes else self.member
            if answers is not None:
                member = profile.answers_save(member=member, values=answers)
        return Response(_me(member))


class ContactCode(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_contact_code",
        summary="Send a code to a new phone or email, to confirm it",
        request=s.ContactCodeIn,
        parameters=[RETRY_AFTER],
        responses={202: s.CodeSentOut, **s.problems(400, 401, 429)},
    )
    def post(self, request):
        v = _valid(s.ContactCodeIn, request.data)
        code_request(address=v["login"], purpose=CodePurpose.BIND, ip=_client_ip(request), member=self.member)
        return _code_sent(v["login"].channel)


class ContactConfirm(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_contact_confirm",
        summary="Confirm the new phone or email with its code; it replaces the old one",
        request=s.ContactConfirmIn,
        responses={200: s.MeOut, **s.problems(400, 401)},
    )
    def post(self, request):
        v = _valid(s.ContactConfirmIn, request.data)
        member = profile.contact_confirm(
            member=self.member, address=v["login"], code=v["code"], channel=CHANNEL
        )
        return Response(_me(member))


class Questionnaire(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_questionnaire",
        summary="The questionnaire's fields and the member's answers",
        responses={200: s.QuestionnaireOut, **s.problems(401)},
    )
    def get(self, request):
        data = {"fields": profile.questionnaire_fields(), "values": self.member.custom_fields}
        return Response(s.QuestionnaireOut(data).data)

    @extend_schema(
        tags=TAG,
        operation_id="member_questionnaire_submit",
        summary="Answer the questionnaire",
        description=(
            "All required fields must be filled; the first complete answer records `questionnaire_filled`."
        ),
        request=s.QuestionnaireIn,
        responses={200: s.QuestionnaireSavedOut, **s.problems(400, 401)},
    )
    def post(self, request):
        v = _valid(s.QuestionnaireIn, request.data)
        member = self.member
        recorded = profile.questionnaire_submit(member=member, values=v["custom_fields"], channel=CHANNEL)
        return Response(
            s.QuestionnaireSavedOut({"values": member.custom_fields, "event_recorded": recorded}).data
        )


# --- balance and cards ------------------------------------------------------------------
class Balance(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_balance",
        summary="Bonuses per currency, those still to come and those expiring soon; the status",
        responses={200: s.BalanceSectionOut, **s.problems(401)},
    )
    def get(self, request):
        section = account.balance_section(self.member)
        data = {
            "balances": section.balances,
            "pending": section.pending,
            "expiring": section.expiring,
            "expiring_days": section.expiring_days,
            "status": account.status_section(self.member),
        }
        return Response(s.BalanceSectionOut(data).data)


class Cards(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_cards",
        summary="The member's cards, newest first",
        responses={200: s.CardOut(many=True), **s.problems(401)},
    )
    def get(self, request):
        return Response(s.CardOut([_card(c) for c in account.member_cards(self.member)], many=True).data)


class CardBind(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_card_bind",
        summary="Bind a card the member holds",
        description=(
            "Only a card nobody has bound yet (or the member's own). A card bound to another "
            "member is answered like an unknown number (404); a blocked or replaced card is 409."
        ),
        request=s.CardBindIn,
        responses={200: s.CardOut, **s.problems(400, 401, 404, 409)},
    )
    def post(self, request):
        v = _valid(s.CardBindIn, request.data)
        number = "".join(ch for ch in v["number"] if ch.isdigit())
        card = Card.objects.filter(number=number).first() if number else None
        if card is None or (card.member_id and card.member_id != self.member.pk):
            raise CardNotFound()
        return Response(s.CardOut(_card(card_bind(card=card, member=self.member))).data)


# --- history ----------------------------------------------------------------------------
def _receipts(receipts: list[Receipt]) -> list[dict]:
    bonuses = account.receipt_bonuses(receipts)
    return [
        {
            "id": r.pk,
            "number": r.external_id,
            "kind": r.kind,
            "state": r.state,
            "point_of_sale": r.point_of_sale.name,
            "purchased_at": r.purchased_at,
            "amount": r.amount,
            "discount": r.discount,
            "total": r.total,
            "bonus_paid": r.bonus_paid,
            "bonuses_earned": bonuses[r.pk]["earned"],
            "bonuses_spent": bonuses[r.pk]["spent"],
            "lines": list(r.lines.all()),
        }
        for r in receipts
    ]


class Receipts(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_receipts",
        summary="Purchases newest first, with their lines and the bonuses they earned and spent",
        parameters=[
            _page("before", "`next_before` of the previous page."),
            _page("limit", f"Default {RECEIPTS_PER_PAGE}.", MAX_PER_PAGE),
        ],
        responses={200: s.ReceiptPageOut, **s.problems(400, 401)},
    )
    def get(self, request):
        before = _int_param(request, "before", None, low=1)
        limit = _int_param(request, "limit", RECEIPTS_PER_PAGE, low=1, high=MAX_PER_PAGE)
        receipts = account.receipts_page(self.member, before_id=before, limit=limit + 1)
        more = len(receipts) > limit
        receipts = receipts[:limit]
        data = {"results": _receipts(receipts), "next_before": receipts[-1].pk if more else None}
        return Response(s.ReceiptPageOut(data).data)


class ReceiptDetail(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_receipt",
        parameters=[_id("receipt_id")],
        summary="One purchase",
        responses={200: s.ReceiptOut, **s.problems(401, 404)},
    )
    def get(self, request, receipt_id: int):
        receipt = account.receipt_of(self.member, receipt_id)
        if receipt is None:
            raise Http404
        return Response(s.ReceiptOut(_receipts([receipt])[0]).data)


def _movement(entry: LedgerEntry) -> dict:
    return {
        "id": entry.pk,
        "created_at": entry.created_at,
        "kind": entry.kind,
        "currency": entry.account.currency.code,
        "available_delta": entry.available_delta,
        "pending_delta": entry.pending_delta,
        "reason": account.movement_reason(entry),
        "receipt_id": entry.operation.receipt_id,
        "expires_at": entry.lot.expires_at,
    }


class Movements(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_movements",
        summary="Bonus movements newest first, each with why it happened",
        parameters=[
            _page("offset", "`next_offset` of the previous page.", 100_000),
            _page("limit", f"Default {MOVEMENTS_PER_PAGE}.", MAX_PER_PAGE),
        ],
        responses={200: s.MovementPageOut, **s.problems(400, 401)},
    )
    def get(self, request):
        offset = _int_param(request, "offset", 0, low=0, high=100_000)
        limit = _int_param(request, "limit", MOVEMENTS_PER_PAGE, low=1, high=MAX_PER_PAGE)
        entries = account.movements_page(self.member, limit=limit + 1, offset=offset)
        more = len(entries) > limit
        data = {
            "results": [_movement(e) for e in entries[:limit]],
            "next_offset": offset + limit if more else None,
        }
        return Response(s.MovementPageOut(data).data)


# --- offers -----------------------------------------------------------------------------
class Offers(MemberView):
    personal: bool | None = None

    @extend_schema(
        tags=TAG,
        operation_id="member_offers",
        summary="Promotional materials for the app the member may see now",
        responses={200: s.ContentOut(many=True), **s.problems(401)},
    )
    def get(self, request):
        rows = content.contents_for(self.member, placement=Placement.APP, personal=self.personal)
        return Response(s.ContentOut(rows, many=True, context={"request": request}).data)


class PersonalOffers(Offers):
    personal = True

    @extend_schema(
        tags=TAG,
        operation_id="member_offers_personal",
        summary="Personal offers: materials for an audience the member is in",
        responses={200: s.ContentOut(many=True), **s.problems(401)},
    )
    def get(self, request):
        return super().get(request)


class OfferDetail(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_offer",
        parameters=[_id("content_id")],
        summary="One promotional material",
        responses={200: s.ContentOut, **s.problems(401, 404)},
    )
    def get(self, request, content_id: int):
        row = content.content_of(self.member, content_id, placement=Placement.APP)
        if row is None:
            raise Http404
        return Response(s.ContentOut(row, context={"request": request}).data)


# --- personal products ------------------------------------------------------------------
def _personal_lists(member: Member, programs: list[PersonalProductProgram]) -> list[dict]:
    picks = picks_of(member, programs)
    return [
        {
            "id": p.pk,
            "name": p.name,
            "description": p.description,
            "max_picks": p.max_picks,
            "starts_at": p.starts_at,
            "ends_at": p.ends_at,
            "products": program_products(p),
            "picked": sorted(picks[p.pk]),
        }
        for p in programs
    ]


class PersonalProducts(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_personal_products",
        summary="Personal products: the open lists, their products and the member's picks",
        responses={200: s.PersonalListOut(many=True), **s.problems(401)},
    )
    def get(self, request):
        data = _personal_lists(self.member, programs_open())
        return Response(s.PersonalListOut(data, many=True).data)


class PersonalProductsPick(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_personal_products_pick",
        parameters=[_id("program_id")],
        summary="Pick products of a list (replaces the earlier picks)",
        description="At most the list's `max_picks`, from its products, while its period lasts.",
        request=s.PicksIn,
        responses={200: s.PersonalListOut, **s.problems(400, 401, 404)},
    )
    def put(self, request, program_id: int):
        v = _valid(s.PicksIn, request.data)
        program = PersonalProductProgram.objects.filter(pk=program_id, active=True).first()
        if program is None:
            raise Http404
        picks_set(member=self.member, program=program, product_ids=v["products"])
        return Response(s.PersonalListOut(_personal_lists(self.member, [program])[0]).data)


# --- subscriptions ----------------------------------------------------------------------
def _subscriptions(member: Member) -> dict:
    subs = subscriptions_of(member)
    categories = [
        {"id": c.pk, "code": c.code, "name": c.name, "description": c.description, "subscribed": on}
        for c, on in subs.categories
    ]
    return s.SubscriptionsOut({"channels": subs.channels, "categories": categories}).data


class Subscriptions(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_subscriptions",
        summary="Channels the member may be contacted on, and the mailing categories",
        responses={200: s.SubscriptionsOut, **s.problems(401)},
    )
    def get(self, request):
        return Response(_subscriptions(self.member))

    @extend_schema(
        tags=TAG,
        operation_id="member_subscriptions_update",
        summary="Subscribe or unsubscribe channels and categories",
        description="Only what is sent changes; each change is recorded with the reason given.",
        request=s.SubscriptionsIn,
        responses={200: s.SubscriptionsOut, **s.problems(400, 401)},
    )
    def put(self, request):
        v = _valid(s.SubscriptionsIn, request.data)
        reason = None
        if v.get("reason_id"):
            reason = UnsubscribeReason.objects.filter(pk=v["reason_id"], active=True).first()
            if reason is None:
                raise ValidationError({"reason_id": [_("Choose one of the listed reasons.")]})
        wanted = v.get("categories", {})
        categories = {c.pk: c for c in MailingCategory.objects.filter(active=True, pk__in=list(wanted))}
        unknown = sorted(set(wanted) - set(categories))
        if unknown:
            raise ValidationError({"categories": [_("No mailing category %(id)s.") % {"id": unknown[0]}]})
        change = {"member": self.member, "source": CHANNEL, "reason": reason, "comment": v["comment"]}
        with transaction.atomic():
            for channel, subscribed in v.get("channels", {}).items():
                channel_set(channel=channel, subscribed=subscribed, **change)
            for pk, subscribed in wanted.items():
                category_set(category=categories[pk], subscribed=subscribed, **change)
        return Response(_subscriptions(self.member))


class SubscriptionReasons(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_unsubscribe_reasons",
        summary="Reasons to offer when the member unsubscribes",
        responses={200: s.ReasonOut(many=True), **s.problems(401)},
    )
    def get(self, request):
        return Response(s.ReasonOut(UnsubscribeReason.objects.filter(active=True), many=True).data)


# --- feedback ---------------------------------------------------------------------------
def _thread(member: Member, feedback_id: int, request) -> dict:
    feedback = feedback_services.feedback_of(member, feedback_id)
    if feedback is None:
        raise Http404
    return s.FeedbackThreadOut(feedback, context={"request": request}).data


class FeedbackList(MemberView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        tags=TAG,
        operation_id="member_feedback_list",
        summary="The member's questions to support, latest activity first",
        responses={200: s.FeedbackOut(many=True), **s.problems(401)},
    )
    def get(self, request):
        return Response(s.FeedbackOut(feedback_services.feedback_list(self.member), many=True).data)

    @extend_schema(
        tags=TAG,
        operation_id="member_feedback_open",
        summary="Ask support a question, optionally with a file",
        request={"multipart/form-data": s.FeedbackIn, "application/json": s.FeedbackIn},
        responses={201: s.FeedbackThreadOut, **s.problems(400, 401)},
    )
    def post(self, request):
        v = _valid(s.FeedbackIn, request.data)
        topic = None
        if v.get("topic"):
            topic = FeedbackTopic.objects.filter(pk=v["topic"], active=True).first()
            if topic is None:
                raise ValidationError({"topic": [_("Choose one of the listed topics.")]})
        feedback = feedback_services.feedback_open(
            member=self.member,
            topic=topic,
            subject=v["subject"],
            text=v["text"],
            attachment=v.get("attachment"),
        )
        return Response(_thread(self.member, feedback.pk, request), status=status.HTTP_201_CREATED)


class FeedbackTopics(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_feedback_topics",
        summary="Topics a question to support may have",
        responses={200: s.TopicOut(many=True), **s.problems(401)},
    )
    def get(self, request):
        return Response(s.TopicOut(FeedbackTopic.objects.filter(active=True), many=True).data)


class FeedbackDetail(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_feedback",
        parameters=[_id("feedback_id")],
        summary="One question with all its messages",
        responses={200: s.FeedbackThreadOut, **s.problems(401, 404)},
    )
    def get(self, request, feedback_id: int):
        return Response(_thread(self.member, feedback_id, request))


class FeedbackReply(MemberView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        tags=TAG,
        operation_id="member_feedback_reply",
        parameters=[_id("feedback_id")],
        summary="Write again in a question's thread",
        request={"multipart/form-data": s.FeedbackMessageIn, "application/json": s.FeedbackMessageIn},
        responses={201: s.FeedbackMessageOut, **s.problems(400, 401, 404)},
    )
    def post(self, request, feedback_id: int):
        v = _valid(s.FeedbackMessageIn, request.data)
        feedback = feedback_services.feedback_of(self.member, feedback_id)
        if feedback is None:
            raise Http404
        message = feedback_services.feedback_reply(
            feedback=feedback, member=self.member, text=v["text"], attachment=v.get("attachment")
        )
        out = s.FeedbackMessageOut(message, context={"request": request}).data
        return Response(out, status=status.HTTP_201_CREATED)


class AnyRenderer(BaseRenderer):
    """Lets a download be asked for with any Accept header; problems still render as JSON."""

    media_type = "*/*"
    format = "file"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else json.dumps(data).encode()


class FeedbackAttachment(MemberView):
    renderer_classes = [FastJSONRenderer, AnyRenderer]

    @extend_schema(
        tags=TAG,
        operation_id="member_feedback_attachment",
        parameters=[_id("feedback_id"), _id("message_id")],
        summary="Download a file attached to a message of the member's own question",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            **s.problems(401, 404),
        },
    )
    def get(self, request, feedback_id: int, message_id: int):
        message = (
            FeedbackMessage.objects.filter(
                pk=message_id, feedback_id=feedback_id, feedback__member=self.member
            )
            .exclude(attachment="")
            .first()
        )
        if message is None:
            raise Http404
        return FileResponse(
            message.attachment.open("rb"), as_attachment=True, filename=message.attachment_name or "file"
        )


# --- devices and events -----------------------------------------------------------------
class Devices(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_device_register",
        summary="Register the device's push token for this member",
        description=(
            "A token registered before (by this or another member) moves to this member and is "
            "active again: 200. A new token: 201."
        ),
        request=s.DeviceIn,
        responses={201: s.DeviceOut, 200: s.DeviceOut, **s.problems(400, 401)},
    )
    def post(self, request):
        v = _valid(s.DeviceIn, request.data)
        device, created = device_register(
            member=self.member, platform=v["platform"], token=v["token"], app=v["app"] or ""
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(s.DeviceOut(device).data, status=code)


class DeviceUnregister(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_device_unregister",
        summary="Stop pushes to a device (on signing out in the app)",
        description="The token travels in the body, never in the URL (URLs end up in access logs).",
        request=s.DeviceTokenIn,
        responses={204: None, **s.problems(400, 401, 404)},
    )
    def post(self, request):
        v = _valid(s.DeviceTokenIn, request.data)
        if not device_unregister(member=self.member, token=v["token"]):
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)


class Events(MemberView):
    @extend_schema(
        tags=TAG,
        operation_id="member_event_report",
        summary="Report what the member did in the app or a social network",
        description="`app_installed` counts once per member: a repeat answers 200 with the first one.",
        request=s.EventIn,
        responses={201: s.EventOut, 200: s.EventOut, **s.problems(400, 401)},
    )
    def post(self, request):
        v = _valid(s.EventIn, request.data)
        event, recorded = profile.app_event_report(
            member=self.member, event_type=v["type"], payload=v["payload"], channel=CHANNEL
        )
        code = status.HTTP_201_CREATED if recorded else status.HTTP_200_OK
        return Response(s.EventOut(event).data, status=code)
