"""Huawei Push Kit (HMS Core), server API v1: push notifications to Huawei Android devices.

Protocol (developer.huawei.com/consumer/en/doc: Push Kit "Downlink message sending" and
"Response codes"; the HMS-Core hms-push-serverdemo-go sample for the token flow and the
message model): an OAuth2 access token comes from the client-credentials grant
(``POST https://oauth-login.cloud.huawei.com/oauth2/v3/token``, form ``grant_type``,
``client_id`` = the app id, ``client_secret`` = the app secret) and is kept until it
expires. ``POST /v1/{appId}/messages:send`` with ``Authorization: Bearer`` takes
``{"validate_only": false, "message": {"token": [...], "notification": {title, body,
image}, "data": "<json string>", "android": {"ttl": "86400s", "notification":
{"click_action": {"type": 2, "url": ...} | {"type": 3}}}}}`` for 1 to 1000 tokens, so
messages of a batch with identical content go out in one request. Answers carry ``code``:
80000000 success; 80100000 partial success, ``msg`` being a JSON string with the
success / failure counts and ``illegal_tokens``; 80300007 all tokens invalid; 80200003
(token expired) and 80200001 (token refused) are answered by a new token and one retry;
HTTP 502 / 503 and 81000001 are temporary. The HarmonyOS NEXT v3 API is not covered.

Push Kit reports acceptance only to the sender (receipts go to a separately registered
receipt endpoint that is not configured here), so an accepted message stays ``sent``: there
are no callbacks and no polling. The API documents no idempotency key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from gateways.providers._http import (
    failed_batch,
    http_client,
    retry_after_seconds,
    transport_failure,
)
from gateways.providers.base import (
    PUSH,
    Lifecycle,
    Outcome,
    OutgoingMessage,
    Provider,
    ProviderConfigForm,
    SendResult,
    providers,
)
from gateways.providers.fcm import payload_size_error, push_data, push_errors

PUSH_URL = "https://push-api.cloud.huawei.com"
OAUTH_URL = "https://oauth-login.cloud.huawei.com/oauth2/v3/token"
EXPIRY_MARGIN = 60.0
MAX_TOKENS = 1000
MAX_TTL = 15 * 86400  # the longest time Push Kit keeps a message for an offline device
PAYLOAD_LIMIT = 4096

SUCCESS = "80000000"
PARTIAL = "80100000"
ALL_TOKENS_INVALID = "80300007"
TOKEN_EXPIRED = "80200003"
TOKEN_REFUSED = "80200001"
NOT_PERMITTED = "80300002"
INTERNAL_ERROR = "81000001"


class HuaweiForm(ProviderConfigForm):
    base_url = forms.URLField(label=_("Push Kit address"), initial=PUSH_URL, assume_scheme="https")
    oauth_url = forms.URLField(label=_("OAuth token address"), initial=OAUTH_URL, assume_scheme="https")
    app_id = forms.CharField(label=_("app id (client id)"), max_length=64)
    client_secret = forms.CharField(
        label=_("app secret (client secret)"), widget=forms.PasswordInput(render_value=False)
    )
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.5, initial=10, required=False)


class AuthFailed(Exception):
    """No access token: the whole batch waits."""


def huawei_message(message: OutgoingMessage) -> dict[str, Any]:
    """The ``message`` object without its tokens: equal for messages that may share a request."""
    content = message.content
    body: dict[str, Any] = {}
    notification = {k: str(content[k]) for k in ("title", "body", "image") if content.get(k)}
    if notification:
        body["notification"] = notification
    data = push_data(content)
    if data:
        body["data"] = json.dumps(data, ensure_ascii=False, sort_keys=True)
    link = str(content.get("link") or "")
    # type 2 opens a web address; type 3 opens the app (which finds the link in the data).
    click = {"type": 2, "url": link} if link.startswith("https://") else {"type": 3}
    android: dict[str, Any] = {"notification": {"click_action": click}}
    if message.validity_seconds:
        android["ttl"] = f"{max(0, min(MAX_TTL, int(message.validity_seconds)))}s"
    body["android"] = android
    return body


@providers.register
class HuaweiPush(Provider):
    key = "huawei"
    label = _("Huawei Push Kit")
    channel = PUSH
    capabilities = frozenset({"text", "image", "link"})
    config_form = HuaweiForm
    sensitive = ("client_secret",)
    max_batch = MAX_TOKENS
    default_rate_per_second = 1000.0

    def __init__(self, settings):
        super().__init__(settings)
        self.client = http_client(
            base_url=settings.get("base_url", PUSH_URL), timeout=settings.get("timeout")
        )
        self._token = ""
        self._token_expires = 0.0

    def close(self):
        self.client.close()

    def _access_token(self) -> str:
        now = time.time()
        if self._token and now < self._token_expires - EXPIRY_MARGIN:
            return self._token
        try:
            response = self.client.post(
                self.settings.get("oauth_url", OAUTH_URL),
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.settings.get("app_id", ""),
                    "client_secret": self.settings.get("client_secret", ""),
                },
            )
        except httpx.HTTPError as exc:
            raise AuthFailed(
                gettext("The OAuth token request failed: %(error)s") % {"error": transport_failure(exc)[1]}
            ) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if response.status_code != 200 or not answer.get("access_token"):
            detail = " ".join(str(answer.get(k, "")) for k in ("error", "sub_error", "error_description"))
            raise AuthFailed(
                gettext("Huawei refused the app id and secret: HTTP %(status)s %(detail)s")
                % {"status": response.status_code, "detail": detail.strip() or response.text[:200]}
            )
        self._token = str(answer["access_token"])
        self._token_expires = now + float(answer.get("expires_in") or 3600)
        return self._token

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        if not batch:
            return []
        try:
            self._access_token()
        except AuthFailed as exc:
            return failed_batch(batch, Outcome.TEMPORARY, str(exc))
        groups: dict[str, list[OutgoingMessage]] = {}
        for message in batch:
            key = json.dumps(huawei_message(message), sort_keys=True)
            groups.setdefault(key, []).append(message)
        requests = [g[i : i + MAX_TOKENS] for g in groups.values() for i in range(0, len(g), MAX_TOKENS)]
        results: list[SendResult] = []
        for n, group in enumerate(requests):
            group_results, stop = self._send_group(group)
            results += group_results
            if stop:
                first = group_results[0]
                reason = gettext("not sent: %(reason)s") % {"reason": first.reason}
                rest = [m for later in requests[n + 1 :] for m in later]
                results += failed_batch(rest, Outcome.TEMPORARY, reason, first.retry_after)
                break
        return results

    def _send_group(self, group: list[OutgoingMessage]) -> tuple[list[SendResult], bool]:
        body = {
            "validate_only": False,
            "message": {**huawei_message(group[0]), "token": [m.to for m in group]},
        }
        path = f"/v1/{self.settings.get('app_id', '')}/messages:send"
        for attempt in (1, 2):
            try:
                token = self._access_token()
            except AuthFailed as exc:
                return failed_batch(group, Outcome.TEMPORARY, str(exc)), True
            try:
                response = self.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                return failed_batch(group, *transport_failure(exc)), True
            code, _msg, _request_id = _answer(response)
            if attempt == 1 and (response.status_code == 401 or code in (TOKEN_EXPIRED, TOKEN_REFUSED)):
                self._token = ""  # fetch a new access token and send again, once
                continue
            break
        return self._results(group, response)

    def _results(
        self, group: list[OutgoingMessage], response: httpx.Response
    ) -> tuple[list[SendResult], bool]:
        status = response.status_code
        code, msg, request_id = _answer(response)
        reason = f"{code or f'HTTP {status}'}: {msg}".strip(": ")[:300]
        if code == SUCCESS and status == 200:
            return [
                SendResult(m.id, Outcome.ACCEPTED, Lifecycle.SENT, provider_message_id=request_id)
                for m in group
            ], False
        if code == PARTIAL:
            illegal = _illegal_tokens(msg)
            return [
                SendResult(
                    m.id,
                    Outcome.PERMANENT,
                    reason=gettext("%(code)s: invalid token") % {"code": code},
                    retire_address=True,
                )
                if m.to in illegal
                else SendResult(m.id, Outcome.ACCEPTED, Lifecycle.SENT, provider_message_id=request_id)
                for m in group
            ], False
        if code == ALL_TOKENS_INVALID:
            return [
                SendResult(m.id, Outcome.PERMANENT, reason=reason, retire_address=True) for m in group
            ], False
        retry_after = retry_after_seconds(response)
        if status >= 500 or code == INTERNAL_ERROR:
            return failed_batch(group, Outcome.TEMPORARY, reason, retry_after), True
        if status == 429:
            return failed_batch(group, Outcome.TEMPORARY, reason, retry_after), True
        if status in (401, 403, 404) or code in (TOKEN_EXPIRED, TOKEN_REFUSED, NOT_PERMITTED):
            why = gettext(
                "%(reason)s: check the app id, app secret, addresses and that Push Kit is enabled"
            ) % {"reason": reason}
            return failed_batch(group, Outcome.TEMPORARY, why), True
        return failed_batch(group, Outcome.REJECTED, reason), False

    def content_errors(self, content):
        errors = push_errors(content)
        if content.get("image") and not str(content["image"]).startswith("https://"):
            errors.append(gettext("Push Kit shows only images at an https:// address."))
        if not errors:
            sample = OutgoingMessage(id=0, ref="", channel=PUSH, to="", content=content)
            too_big = payload_size_error(huawei_message(sample), PAYLOAD_LIMIT)
            if too_big:
                errors.append(too_big)
        return errors


def _answer(response: httpx.Response) -> tuple[str, str, str]:
    """(code, msg, requestId) of a Push Kit answer."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200], ""
    if not isinstance(body, dict):
        return "", response.text[:200], ""
    return str(body.get("code") or ""), str(body.get("msg") or ""), str(body.get("requestId") or "")


def _illegal_tokens(msg: str) -> set[str]:
    """The tokens a partial-success ``msg`` lists as illegal (``msg`` is itself JSON)."""
    try:
        detail = json.loads(msg)
    except ValueError:
        return set()
    tokens = detail.get("illegal_tokens") if isinstance(detail, dict) else None
    return {str(t) for t in tokens or []}
