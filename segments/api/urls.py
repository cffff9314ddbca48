from django.urls import path

from segments.api import views

urlpatterns = [
    path("segments/", views.SegmentList.as_view(), name="api-segments"),
    path("audiences/", views.AudienceList.as_view(), name="api-audiences"),
    path("members/<int:pk>/segments/", views.MemberMemberships.as_view(), name="api-member-segments"),
]
