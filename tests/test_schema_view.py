"""The OpenAPI schema answers requests that arrive together (drf-spectacular's generator
is not safe to run in two threads at once)."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest


@pytest.mark.django_db
def test_the_schema_answers_concurrent_requests(live_server):
    # when: eight requests at once, each in its own server thread
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda _i: httpx.get(f"{live_server.url}/api/schema/", timeout=60).status_code, range(8))
        )
    # then
    assert statuses == [200] * 8


PINNED_ENUMS = {
    "CardKindEnum",
    "CardStateEnum",
    "ContactChannelEnum",
    "ContactStatusEnum",
    "DevicePlatformEnum",
    "EntryKindEnum",
    "FeedbackAuthorEnum",
    "GenderEnum",
    "LanguageEnum",
    "MemberStateEnum",
    "RegistrationChannelEnum",
    "SignInCodePurposeEnum",
    "AppEventTypeEnum",
}


@pytest.mark.django_db
def test_components_keep_their_names_whatever_the_readers_language(client):
    # when the schema is read in English and in Russian
    names = {}
    for language in ("en", "ru"):
        answer = client.get("/api/schema/", {"format": "json"}, HTTP_ACCEPT_LANGUAGE=language)
        assert answer.status_code == 200
        names[language] = set(answer.json()["components"]["schemas"])

    # then the same components, every enum under its own pinned name (a generated client
    # keeps its types), and no enum named after a field that another serializer shares
    assert names["en"] == names["ru"]
    assert names["en"] >= PINNED_ENUMS
    assert not {"TypeEnum", "ChannelEnum", "AuthorEnum", "PurposeEnum", "PlatformEnum"} & names["en"]
    assert not {name for name in names["en"] if name.endswith("LanguageEnum") and name != "LanguageEnum"}
