from django.urls import path

from communications import views

app_name = "communications"
urlpatterns = [
    path("o/<uuid:ref>.gif", views.opened, name="open"),
    path("c/<uuid:ref>/", views.clicked, name="click"),
    path("u/<uuid:ref>/", views.unsubscribe, name="unsubscribe"),
    path("v/<uuid:ref>/", views.view_online, name="view"),
]
