"""API keys in the back office: the secret is shown once on creation, the list shows the
prefix, partner, point of sale and last use, and a key can be revoked."""

from django.urls import reverse
from rest_framework.test import APIClient

from pos.models import ApiKey


def test_creating_a_key_shows_its_secret_once_and_it_works(admin_client, world):
    response = admin_client.post(
        reverse("admin:pos_apikey_add"),
        {"name": "Hypermarket tills", "partner": world.partner.pk, "point_of_sale": world.hyper.pk},
        follow=True,
    )
    assert response.status_code == 200
    key = ApiKey.objects.get()
    shown = [m.message for m in response.context["messages"]]
    (token,) = [word for message in shown for word in message.split() if word.startswith(f"{key.prefix}.")]
    assert token.split(".", 1)[1] not in key.secret_hash
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {token}")
    assert client.get("/api/v1/pos/balance", {"card": "1"}).status_code == 404  # authenticated
    listing = admin_client.get(reverse("admin:pos_apikey_changelist")).content.decode()
    assert key.prefix in listing and "Hypermarket 1" in listing and world.partner.name in listing
    assert token not in listing
    assert token not in admin_client.get(reverse("admin:pos_apikey_change", args=[key.pk])).content.decode()


def test_a_point_of_sale_of_another_partner_is_refused(admin_client, world):
    response = admin_client.post(
        reverse("admin:pos_apikey_add"),
        {"name": "Wrong", "partner": world.partner.pk, "point_of_sale": world.other_store.pk},
    )
    assert response.status_code == 200 and not ApiKey.objects.exists()
    assert "point_of_sale" in response.context["adminform"].form.errors


def test_revoking_stops_the_key(admin_client, world, key):
    response = admin_client.post(
        reverse("admin:pos_apikey_changelist"),
        {"action": "revoke", "_selected_action": [key.api_key.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert not ApiKey.objects.get().active
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key.token}")
    assert client.get("/api/v1/pos/balance", {"card": "1"}).status_code == 401
