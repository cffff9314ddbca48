from django.urls import path

from loyalty.api import views

urlpatterns = [
    path("members/", views.MemberListCreate.as_view(), name="api-members"),
    path("members/<int:pk>/", views.MemberDetail.as_view(), name="api-member"),
    path("members/<int:pk>/consents/", views.MemberConsent.as_view(), name="api-member-consents"),
    path("members/<int:pk>/balance/", views.MemberBalance.as_view(), name="api-member-balance"),
    path("members/<int:pk>/history/", views.MemberHistory.as_view(), name="api-member-history"),
    path("cards/", views.CardIssue.as_view(), name="api-cards"),
    path("cards/<str:number>/", views.CardDetail.as_view(), name="api-card"),
    path("cards/<str:number>/bind/", views.CardBind.as_view(), name="api-card-bind"),
    path("cards/<str:number>/activate/", views.CardActivate.as_view(), name="api-card-activate"),
    path("cards/<str:number>/block/", views.CardBlock.as_view(), name="api-card-block"),
    path("cards/<str:number>/unblock/", views.CardUnblock.as_view(), name="api-card-unblock"),
    path("cards/<str:number>/replace/", views.CardReplace.as_view(), name="api-card-replace"),
    path("events/", views.EventReport.as_view(), name="api-events"),
]
