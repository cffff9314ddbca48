"""The provider registry. Every module in this package registers its adapters on import."""

import importlib
import pkgutil

from gateways.providers.base import (  # noqa: F401
    CHANNELS,
    CallbackRejected,
    GatewaySettings,
    Lifecycle,
    Outcome,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
    StatusUpdate,
    providers,
)


def autodiscover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


autodiscover()
