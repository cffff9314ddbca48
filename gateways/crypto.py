"""Gateway credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``GATEWAY_SECRETS_KEY`` (a Fernet key) or, when that is unset, is
derived from ``SECRET_KEY`` with HKDF, so rotating ``SECRET_KEY`` without setting
``GATEWAY_SECRETS_KEY`` makes stored credentials unreadable (they must be entered again).
"""

import base64
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(key_material: str, explicit: bool) -> Fernet:
    if explicit:
        return Fernet(key_material.encode())
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gateways", info=b"credentials").derive(
        key_material.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def fernet() -> Fernet:
    explicit = getattr(settings, "GATEWAY_SECRETS_KEY", "")
    return _fernet(explicit or settings.SECRET_KEY, bool(explicit))


def secrets_encrypt(values: dict[str, str]) -> str:
    if not values:
        return ""
    return fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def secrets_decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise ValueError("gateway credentials cannot be decrypted with the current key") from exc
