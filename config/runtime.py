"""Process start-up shared by the web server and the Celery workers."""

import gc
import itertools

# Collect the youngest generation after this many new container objects instead of
# Python's 700: a batch of a thousand messages makes some fifty thousand (rows, contexts,
# rendered parts), and each collection also walks everything of the batch still alive.
YOUNG_GENERATION_THRESHOLD = 50_000
# A web process collects its older generations every this many requests (the middle one),
# and every this many squared (all of them).
OLDER_GENERATIONS_EVERY = 100

_requests = itertools.count(1)


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


def previous_request_garbage_collect(**kwargs) -> None:
    """Collect the previous request's garbage as a request starts (``request_started``,
    web processes only). Django's request and response hold themselves in cycles (the
    lazy user's closure, DRF's request and renderer context), so all a request built
    stays until the collector runs: with ``YOUNG_GENERATION_THRESHOLD`` that was every
    hundred or so till requests, a 90 ms pause that held up the requests queued behind
    it (calculate p99 47-62 ms at 300 receipts/s). One request's garbage is a fraction
    of a millisecond to collect, and collected young it costs the worker a third of the
    CPU it did in bulk."""
    n = next(_requests)
    if n % (OLDER_GENERATIONS_EVERY * OLDER_GENERATIONS_EVERY) == 0:
        gc.collect(2)
    elif n % OLDER_GENERATIONS_EVERY == 0:
        gc.collect(1)
    else:
        gc.collect(0)
