"""The OpenAPI schema view, one generation at a time per process: drf-spectacular's
generator keeps state in class attributes, and two requests generating the schema at
once in threads of one process fail (a 500 on ``/api/schema/``)."""

import threading

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView

_generating = threading.Lock()


class SchemaView(SpectacularAPIView):
    permission_classes = []

    @extend_schema(**SCHEMA_KWARGS)  # described as drf-spectacular describes its own view
    def get(self, request, *args, **kwargs):
        with _generating:
            return super().get(request, *args, **kwargs)
