"""Process start-up shared by the web server and the Celery workers."""

import gc

# Collect the youngest generation after this many new container objects instead of
# Python's 700: a batch of a thousand messages makes some fifty thousand (rows, contexts,
# rendered parts), and each collection also walks everything of the batch still alive.
YOUNG_GENERATION_THRESHOLD = 50_000


def startup_objects_freeze() -> None:
    """Load the URL configuration (every view, and what links in messages are built
    from) now rather than on the first request or the first message with a link, then
    move everything loaded at start-up out of the garbage collector's reach. A full collection otherwise
    walks those hundreds of thousands of objects again and again while a worker renders
    a batch of messages or a web process answers a point of sale: pauses of tens of
    milliseconds at random. In forked processes it also keeps the pages shared. Then
    collect less often (``YOUNG_GENERATION_THRESHOLD``)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, gen1, gen2)
