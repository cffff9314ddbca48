"""Members, cards, balances and events over REST. Each view parses input with its
serializer, calls one service and renders the result; errors leave as problem details."""

from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty import selectors
from loyalty.api import serializers as s
from loyalty.models import Card, Consent, Member, PointOfSale
from loyalty.services import cards as card_services
from loyalty.services import members as member_services
from loyalty.services.events import event_report

TAG_MEMBERS, TAG_CARDS, TAG_EVENTS = ["members"], ["cards"], ["events"]


def _members():
    return Member.objects.select_related("status").prefetch_related(
        "cards", Prefetch("consents", queryset=Consent.objects.all())
    )


class MemberListCreate(APIView):
    @extend_schema(
        tags=TAG_MEMBERS,
        summary="Find members by phone (any format), email, card number or external id",
        parameters=[OpenApiParameter("q", str, description="phone, email, card number or external id")],
        responses=s.MemberOut(many=True),
    )
    def get(self, request):
        term = request.query_params.get("q", "").strip()
        if not term:
            raise ValidationError({"q": ["Give a phone, email, card number or external id."]})
        found = selectors.members_search(_members(), term)[:20]
        return Response(s.MemberOut(found, many=True).data)

    @extend_schema(
        tags=TAG_MEMBERS, summary="Register a member", request=s.MemberIn, responses={201: s.MemberOut}
    )
    @transaction.atomic
    def post(self, request):
        data = s.MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        consents = fields.pop("consents", {})
        card_number = fields.pop("card_number", "")
        referral_code = fields.pop("referral_code", "")
        if referral_code:
            referrer = Member.objects.filter(referral_code=referral_code.upper()).first()
            if referrer is None:
                raise ValidationError({"referral_code": ["No member has this referral code."]})
            fields["referrer"] = referrer
        card = None
        if card_number:
            card = Card.objects.filter(number=card_number).first()
            if card is None:
                raise ValidationError({"card_number": ["No such card."]})
        member = member_services.member_create(consents=consents, consent_source="api", **fields)
        if card is not None:
            card_services.card_bind(card=card, member=member)
            card_services.card_activate(card=card, channel=member.registration_channel)
        return Response(s.MemberOut(_members().get(pk=member.pk)).data, status=status.HTTP_201_CREATED)


class MemberDetail(APIView):
    @extend_schema(tags=TAG_MEMBERS, summary="A member's profile", responses=s.MemberOut)
    def get(self, request, pk: int):
        return Response(s.MemberOut(get_object_or_404(_members(), pk=pk)).data)

    @extend_schema(
        tags=TAG_MEMBERS, summary="Change profile fields", request=s.MemberIn, responses=s.MemberOut
    )
    def patch(self, request, pk: int):
        member = get_object_or_404(Member, pk=pk)
        data = s.MemberIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        for extra in ("consents", "card_number", "referral_code"):
            if fields.pop(extra, None) not in (None, "", {}):
                raise ValidationError({extra: ["Cannot be changed here."]})
        member_services.member_update(member=member, channel="api", **fields)
        return Response(s.MemberOut(_members().get(pk=pk)).data)


class MemberConsent(APIView):
    @extend_schema(
        tags=TAG_MEMBERS,
        summary="Give or withdraw consent on a channel",
        request=s.ConsentIn,
        responses=s.MemberOut,
    )
    def post(self, request, pk: int):
        member = get_object_or_404(Member, pk=pk)
        data = s.ConsentIn(data=request.data)
        data.is_valid(raise_exception=True)
        member_services.consent_set(member=member, **data.validated_data)
        return Response(s.MemberOut(_members().get(pk=pk)).data)


class MemberBalance(APIView):
    @extend_schema(
        tags=TAG_MEMBERS,
        summary="Balance per currency: available, pending, expiring soon",
        parameters=[OpenApiParameter("expiring_days", int)],
        responses=s.BalanceOut(many=True),
    )
    def get(self, request, pk: int):
        member = get_object_or_404(Member, pk=pk)
        try:
            days = int(request.query_params.get("expiring_days", 30))
        except ValueError:
            raise ValidationError({"expiring_days": ["A whole number of days."]}) from None
        if not 0 < days <= 3650:
            raise ValidationError({"expiring_days": ["Between 1 and 3650."]})
        balances = selectors.member_balances(member=member, expiring_days=days)
        return Response(s.BalanceOut(balances, many=True).data)


class MemberHistory(generics.ListAPIView):
    serializer_class = s.LedgerEntryOut
    filter_backends = []

    @extend_schema(tags=TAG_MEMBERS, summary="Point history: every ledger movement with its source")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        member = get_object_or_404(Member, pk=self.kwargs["pk"])
        return selectors.member_ledger_history(member=member, limit=None)


def _card(number: str) -> Card:
    return get_object_or_404(Card, number=number)


class CardIssue(APIView):
    @extend_schema(
        tags=TAG_CARDS,
        summary="Issue a card (a new number if none given)",
        request=s.CardIssueIn,
        responses={201: s.CardOut},
    )
    def post(self, request):
        data = s.CardIssueIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        member = get_object_or_404(Member, pk=v["member"]) if v.get("member") else None
        pos = get_object_or_404(PointOfSale, code=v["point_of_sale"]) if v.get("point_of_sale") else None
        if v.get("number") and not card_services.card_number_valid(v["number"]):
            raise ValidationError(
                {"number": ["Not a card number of this program (prefix, length, check digit)."]}
            )
        card = card_services.card_issue(
            number=v.get("number", ""), kind=v["kind"], member=member, point_of_sale=pos
        )
        return Response(s.CardOut(card).data, status=status.HTTP_201_CREATED)


class CardDetail(APIView):
    @extend_schema(tags=TAG_CARDS, summary="A card", responses=s.CardOut)
    def get(self, request, number: str):
        return Response(s.CardOut(_card(number)).data)


class CardBind(APIView):
    @extend_schema(
        tags=TAG_CARDS, summary="Bind a card to a member", request=s.CardBindIn, responses=s.CardOut
    )
    def post(self, request, number: str):
        data = s.CardBindIn(data=request.data)
        data.is_valid(raise_exception=True)
        member = get_object_or_404(Member, pk=data.validated_data["member"])
        return Response(s.CardOut(card_services.card_bind(card=_card(number), member=member)).data)


class CardActivate(APIView):
    @extend_schema(tags=TAG_CARDS, summary="Activate a bound card", request=None, responses=s.CardOut)
    def post(self, request, number: str):
        return Response(s.CardOut(card_services.card_activate(card=_card(number), channel="api")).data)


class CardBlock(APIView):
    @extend_schema(tags=TAG_CARDS, summary="Block a card", request=s.ReasonIn, responses=s.CardOut)
    def post(self, request, number: str):
        data = s.ReasonIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(s.CardOut(card_services.card_block(card=_card(number), **data.validated_data)).data)


class CardUnblock(APIView):
    @extend_schema(tags=TAG_CARDS, summary="Unblock a card", request=None, responses=s.CardOut)
    def post(self, request, number: str):
        return Response(s.CardOut(card_services.card_unblock(card=_card(number))).data)


class CardReplace(APIView):
    @extend_schema(
        tags=TAG_CARDS,
        summary="Replace a card; the balance stays with the member",
        request=s.CardReplaceIn,
        responses={201: s.CardOut},
    )
    def post(self, request, number: str):
        data = s.CardReplaceIn(data=request.data)
        data.is_valid(raise_exception=True)
        new = card_services.card_replace(card=_card(number), **data.validated_data)
        return Response(s.CardOut(new).data, status=status.HTTP_201_CREATED)


class EventReport(APIView):
    @extend_schema(
        tags=TAG_EVENTS,
        summary="Report a member event (app installed, social activity, ...)",
        description="`app_installed` counts once per member: a repeat answers 200 with the first event.",
        request=s.EventIn,
        responses={201: s.EventOut, 200: s.EventOut},
    )
    def post(self, request):
        data = s.EventIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        member = get_object_or_404(Member, pk=v["member"])
        pos = get_object_or_404(PointOfSale, code=v["point_of_sale"]) if v.get("point_of_sale") else None
        event, recorded = event_report(
            event_type=v["event_type"],
            member=member,
            point_of_sale=pos,
            channel=v.get("channel", ""),
            payload=v.get("payload", {}),
            occurred_at=v.get("occurred_at"),
        )
        return Response(
            s.EventOut(event).data, status=status.HTTP_201_CREATED if recorded else status.HTTP_200_OK
        )
