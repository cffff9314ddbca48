"""Azure Notification Hubs direct send against a local peer that checks the Service Bus
shared access signature and the routing headers, answering as the REST reference says."""

import base64
import hashlib
import hmac
import time
from urllib.parse import unquote

import pytest

from gateways.providers import Lifecycle, Outcome
from gateways.providers.azure_hubs import AzureHubsForm
from tests.gateways.peers import HttpPeer, PeerResponse

NAMESPACE = "loyalty-ns"
HUB = "loyalty-hub"
RULE = "DefaultFullSharedAccessSignature"
KEY = "q3Tl4oF1X9mJ7c0Vb1Zr+k2n5Wc/8xYpDg3hHfR6sLo="
CONNECTION = (
    f"Endpoint=sb://{NAMESPACE}.servicebus.windows.net/;SharedAccessKeyName={RULE};SharedAccessKey={KEY}"
)
# The hub's address, lower-cased and percent-encoded, as the signature names it.
RESOURCE = "https%3a%2f%2floyalty-ns.servicebus.windows.net%2floyalty-hub"


def sas_valid(authorization: str, key: str = KEY) -> bool:
    scheme, _, token = authorization.partition(" ")
    fields = dict(part.split("=", 1) for part in token.split("&"))
    if scheme != "SharedAccessSignature" or fields.get("sr") != RESOURCE or fields.get("skn") != RULE:
        return False
    expected = hmac.new(key.encode(), f"{fields['sr']}\n{fields['se']}".encode(), hashlib.sha256).digest()
    return (
        hmac.compare_digest(unquote(fields["sig"]), base64.b64encode(expected).decode())
        and int(fields["se"]) > time.time()
    )


class HubPeer:
    """``POST /{hub}/messages/`` with a valid signature: 201 with ``TrackingId`` (and
    ``Location`` for apple, as a Standard-tier hub does), or the next scripted answer."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.count = 0
        self.http = HttpPeer(self.handle)

    def __enter__(self):
        self.http.__enter__()
        return self

    def __exit__(self, *exc):
        self.http.__exit__(*exc)

    @property
    def url(self):
        return self.http.url

    @property
    def requests(self):
        return self.http.requests

    def handle(self, request):
        if request.path != f"/{HUB}/messages/":
            return PeerResponse(
                404, "<Error><Code>404</Code><Detail>No message branch at the URI.</Detail></Error>"
            )
        if not sas_valid(request.headers.get("authorization", "")):
            return PeerResponse(401, "<Error><Code>401</Code><Detail>InvalidSignature</Detail></Error>")
        if self.answers:
            return self.answers.pop(0)
        self.count += 1
        headers = {"TrackingId": f"track-{self.count}"}
        if request.headers.get("servicebusnotification-format") == "apple":
            location = f"https://{NAMESPACE}.servicebus.windows.net/{HUB}/messages/720193847{self.count}?api-version=2015-04"
            headers["Location"] = location
        return PeerResponse(201, b"", headers)


def hub_config(peer, **extra):
    return {"connection_string": CONNECTION, "hub_name": HUB, "base_url": peer.url, **extra}


def recorded_urls(adapter) -> list[str]:
    """The request URLs exactly as sent (the peer's parsed query drops the bare ``direct`` flag)."""
    urls: list[str] = []
    adapter.client.event_hooks = {"request": [lambda request: urls.append(str(request.url))]}
    return urls


def test_ios_and_android_devices_get_their_native_format_by_direct_send(make_adapter, outgoing):
    # given
    content = {
        "title": "Sale",
        "body": "-20% today",
        "link": "https://shop.example/sale",
        "data": {"offer": "7"},
    }
    with HubPeer() as peer:
        adapter = make_adapter("azure_notification_hubs", hub_config(peer))
        urls = recorded_urls(adapter)
        batch = [
            outgoing("push", "apns-device-token", content, platform="ios"),
            outgoing("push", "fcm-registration-token", content, platform="android", validity_seconds=600),
        ]
        # when
        iphone, android = adapter.send(batch)
    # then: both signed for the hub, sent directly to the device handle
    assert urls == [f"{peer.url}/{HUB}/messages/?direct&api-version=2015-04"] * 2
    apple, fcm = peer.requests
    assert sas_valid(apple.headers["authorization"]) and sas_valid(fcm.headers["authorization"])
    assert apple.headers["servicebusnotification-format"] == "apple"
    assert apple.headers["servicebusnotification-devicehandle"] == "apns-device-token"
    assert apple.headers["x-ms-version"] == "2015-04" and apple.headers["apns-push-type"] == "alert"
    assert apple.headers["content-type"] == "application/json;charset=utf-8"
    assert apple.json() == {
        "aps": {"alert": {"title": "Sale", "body": "-20% today"}},
        "offer": "7",
        "link": "https://shop.example/sale",
    }
    assert fcm.headers["servicebusnotification-format"] == "fcmV1"
    assert fcm.headers["servicebusnotification-devicehandle"] == "fcm-registration-token"
    assert fcm.json() == {
        "message": {
            "notification": {"title": "Sale", "body": "-20% today"},
            "data": {"offer": "7", "link": "https://shop.example/sale"},
            "android": {"ttl": "600s"},
        }
    }
    # and the notification id (Location) or the tracking id identifies each
    assert iphone.outcome == android.outcome == Outcome.ACCEPTED and iphone.status == Lifecycle.SENT
    assert iphone.provider_message_id == "7201938471"
    assert android.provider_message_id == "track-2"


def test_a_wrong_key_is_a_configuration_problem_for_the_whole_batch(make_adapter, outgoing):
    # given
    wrong = CONNECTION.replace(KEY, "bm90IHRoZSBrZXk=")
    with HubPeer() as peer:
        adapter = make_adapter("azure_notification_hubs", hub_config(peer, connection_string=wrong))
        # when
        first, second = adapter.send(
            [
                outgoing("push", "t1", {"body": "a"}, platform="ios"),
                outgoing("push", "t2", {"body": "b"}, platform="ios"),
            ]
        )
    # then
    assert len(peer.requests) == 1
    assert first.outcome == second.outcome == Outcome.TEMPORARY
    assert "InvalidSignature" in first.reason and "connection string" in first.reason


def test_a_wrong_hub_name_waits_for_the_configuration(make_adapter, outgoing):
    with HubPeer() as peer:
        adapter = make_adapter("azure_notification_hubs", hub_config(peer, hub_name="no-such-hub"))
        (result,) = adapter.send([outgoing("push", "t1", {"body": "a"}, platform="android")])
    assert result.outcome == Outcome.TEMPORARY and "404" in result.reason


@pytest.mark.parametrize(
    ("answer", "outcome", "retry_after"),
    [
        (
            PeerResponse(403, "<Error><Code>403</Code><Detail>Quota exceeded.</Detail></Error>"),
            Outcome.TEMPORARY,
            60,
        ),
        (
            PeerResponse(403, "<Error><Code>403</Code><Detail>Message too large.</Detail></Error>"),
            Outcome.REJECTED,
            None,
        ),
        (PeerResponse(503, "busy", {"Retry-After": "15"}), Outcome.TEMPORARY, 15),
        (
            PeerResponse(400, "<Error><Code>400</Code><Detail>Bad payload.</Detail></Error>"),
            Outcome.REJECTED,
            None,
        ),
        (PeerResponse(413, "too large"), Outcome.REJECTED, None),
    ],
)
def test_answers_map_to_outcomes(make_adapter, outgoing, answer, outcome, retry_after):
    with HubPeer([answer]) as peer:
        adapter = make_adapter("azure_notification_hubs", hub_config(peer))
        (result,) = adapter.send([outgoing("push", "t1", {"body": "a"}, platform="ios")])
    assert result.outcome == outcome and result.retry_after == retry_after
    assert not result.retire_address  # the hub handles dead handles itself


def test_platforms_the_hub_cannot_address_directly_are_rejected_without_a_request(make_adapter, outgoing):
    with HubPeer() as peer:
        adapter = make_adapter("azure_notification_hubs", hub_config(peer))
        huawei, android = adapter.send(
            [
                outgoing("push", "h1", {"body": "a"}, platform="huawei"),
                outgoing("push", "a1", {"body": "a"}, platform="android"),
            ]
        )
    assert huawei.outcome == Outcome.REJECTED and "huawei" in huawei.reason
    assert android.outcome == Outcome.ACCEPTED and len(peer.requests) == 1


def test_the_form_checks_the_connection_string():
    good = AzureHubsForm(data={"connection_string": CONNECTION, "hub_name": HUB})
    bad = AzureHubsForm(
        data={"connection_string": "Endpoint=sb://x/;SharedAccessKeyName=rule", "hub_name": HUB}
    )
    assert good.is_valid(), good.errors
    assert "connection_string" in bad.errors


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"body": "Hi", "link": "https://x"}, True),
        ({"link": "https://x"}, False),
        ({"title": "x" * 4100}, False),
    ],
)
def test_content_errors(make_adapter, content, ok):
    adapter = make_adapter("azure_notification_hubs", {})
    assert (adapter.content_errors(content) == []) is ok
