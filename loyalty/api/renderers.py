"""JSON answers written by orjson: the same document as DRF's ``JSONRenderer`` (compact,
UTF-8, datetimes, decimals and lazy texts as DRF's encoder writes them) in a tenth of
the time. A till's answer lists every line and every offer's effect, and writing it with
the standard library took longer than finding the member."""

import orjson
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_ENCODER = JSONEncoder()
# Datetimes go to DRF's encoder ("Z" for UTC, as every other answer writes them); dict
# keys that are not strings are written as strings, as the standard library does.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


class FastJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.get_indent(accepted_media_type, renderer_context or {}):  # asked for, e.g. by curl
            return super().render(data, accepted_media_type, renderer_context)
        return orjson.dumps(data, default=_ENCODER.default, option=_OPTIONS)


class PlainAcceptNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, answering at once the ``Accept`` headers tills send (none,
    ``*/*`` or ``application/json``, and no ``?format=``) with the view's JSON renderer:
    parsing the header cost a till request more than finding its URL. Any other header
    (``application/json; indent=4``, a list, a type the view cannot write) is negotiated
    as before."""

    _PLAIN = frozenset({"", "*/*", "application/json"})

    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            format_suffix is None
            and request.META.get("HTTP_ACCEPT", "").strip() in self._PLAIN
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            renderer = renderers[0]
            if renderer.media_type == "application/json":
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
