"""The member API for the mobile app, under ``/api/v1/me/``."""

from django.urls import path

from portal.api import views

app_name = "member-api"
urlpatterns = [
    path("auth/code", views.CodeRequest.as_view(), name="auth-code"),
    path("auth/token", views.TokenCreate.as_view(), name="auth-token"),
    path("auth/register", views.Register.as_view(), name="auth-register"),
    path("auth/logout", views.Logout.as_view(), name="auth-logout"),
    path("", views.Me.as_view(), name="me"),
    path("contacts/code", views.ContactCode.as_view(), name="contacts-code"),
    path("contacts/confirm", views.ContactConfirm.as_view(), name="contacts-confirm"),
    path("questionnaire", views.Questionnaire.as_view(), name="questionnaire"),
    path("balance", views.Balance.as_view(), name="balance"),
    path("cards", views.Cards.as_view(), name="cards"),
    path("cards/bind", views.CardBind.as_view(), name="cards-bind"),
    path("history/receipts", views.Receipts.as_view(), name="receipts"),
    path("history/receipts/<int:receipt_id>", views.ReceiptDetail.as_view(), name="receipt"),
    path("history/movements", views.Movements.as_view(), name="movements"),
    path("offers", views.Offers.as_view(), name="offers"),
    path("offers/personal", views.PersonalOffers.as_view(), name="offers-personal"),
    path("offers/<int:content_id>", views.OfferDetail.as_view(), name="offer"),
    path("personal-products", views.PersonalProducts.as_view(), name="personal-products"),
    path(
        "personal-products/<int:program_id>",
        views.PersonalProductsPick.as_view(),
        name="personal-products-pick",
    ),
    path("subscriptions", views.Subscriptions.as_view(), name="subscriptions"),
    path("subscriptions/reasons", views.SubscriptionReasons.as_view(), name="subscription-reasons"),
    path("feedback", views.FeedbackList.as_view(), name="feedback-list"),
    path("feedback/topics", views.FeedbackTopics.as_view(), name="feedback-topics"),
    path("feedback/<int:feedback_id>", views.FeedbackDetail.as_view(), name="feedback"),
    path("feedback/<int:feedback_id>/messages", views.FeedbackReply.as_view(), name="feedback-reply"),
    path(
        "feedback/<int:feedback_id>/messages/<int:message_id>/attachment",
        views.FeedbackAttachment.as_view(),
        name="feedback-attachment",
    ),
    path("devices", views.Devices.as_view(), name="devices"),
    path("devices/unregister", views.DeviceUnregister.as_view(), name="device-unregister"),
    path("events", views.Events.as_view(), name="events"),
]
