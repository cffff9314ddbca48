from django.urls import path

from portal import views

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-in/password/", views.sign_in_password, name="sign_in_password"),
    path("sign-in/code/", views.code, name="code"),
    path("sign-in/code/resend/", views.code_resend, name="code_resend"),
    path("register/", views.register, name="register"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("card.svg", views.card_qr, name="card_qr"),
    path("history/", views.history, name="history"),
    path("history/receipts/<int:receipt_id>/", views.receipt, name="receipt"),
    path("offers/", views.offers, name="offers"),
    path("offers/personal/", views.personal_offers, name="personal_offers"),
    path("offers/<int:content_id>/image", views.content_image, name="content_image"),
    path("products/", views.personal_products, name="products"),
    path("profile/", views.profile_page, name="profile"),
    path("profile/questionnaire/", views.questionnaire, name="questionnaire"),
    path("profile/contact/", views.contact_change, name="contact_change"),
    path("profile/contact/confirm/", views.contact_confirm, name="contact_confirm"),
    path("profile/card/", views.card_bind, name="card_bind"),
    path("profile/password/", views.password, name="password"),
    path("subscriptions/", views.subscriptions, name="subscriptions"),
    path("feedback/", views.feedback_list, name="feedback"),
    path("feedback/<int:feedback_id>/", views.feedback_thread, name="feedback_thread"),
    path(
        "feedback/<int:feedback_id>/messages/<int:message_id>/attachment",
        views.feedback_attachment,
        name="feedback_attachment",
    ),
]
