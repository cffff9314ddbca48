"""Segments and audiences over REST: lists with counts, and a member's memberships."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.models import Member
from segments.models import AudienceMember, Segment, TargetAudience
from segments.rules import rule_words
from segments.services import member_segments

TAGS = ["segments"]


class SegmentOut(serializers.ModelSerializer):
    summary = serializers.SerializerMethodField()

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "member_count", "refreshed_at", "summary"]

    def get_summary(self, obj: Segment) -> str:
        return rule_words(obj.rule)


class AudienceOut(serializers.ModelSerializer):
    class Meta:
        model = TargetAudience
        fields = ["id", "name", "description", "member_count", "updated_at"]


class MemberMembershipsOut(serializers.Serializer):
    segments = SegmentOut(many=True)
    audiences = AudienceOut(many=True)


class SegmentList(generics.ListAPIView):
    serializer_class = SegmentOut
    queryset = Segment.objects.order_by("name")
    filter_backends = []

    @extend_schema(tags=TAGS, summary="Segments with the size of their last snapshot")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AudienceList(generics.ListAPIView):
    serializer_class = AudienceOut
    queryset = TargetAudience.objects.order_by("name")
    filter_backends = []

    @extend_schema(tags=TAGS, summary="Target audiences with their sizes")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MemberMemberships(APIView):
    @extend_schema(
        tags=TAGS,
        summary="The segments (last snapshots) and audiences a member is in",
        responses=MemberMembershipsOut,
    )
    def get(self, request, pk: int):
        member = get_object_or_404(Member, pk=pk)
        audiences = TargetAudience.objects.filter(
            pk__in=AudienceMember.objects.filter(member=member).values("audience_id")
        )
        return Response(
            MemberMembershipsOut({"segments": member_segments(member), "audiences": audiences}).data
        )
