from django.urls import path

from gateways import views

app_name = "gateways"
urlpatterns = [
    path("callback/<int:gateway_id>/<str:token>/", views.callback, name="callback"),
]
