"""gunicorn settings for the web processes (``gunicorn -c config/gunicorn.conf.py``).

Synchronous workers behind a buffering proxy (``deploy/nginx.conf``): a worker takes a
connection only when it is free, so requests spread evenly over the processes whatever
the clients do. Threaded workers hand out keep-alive connections when they are accepted,
and a few busy tills can then load one process while another idles (the POS benchmark
saw one worker do 93 % of the work). Pricing a receipt is CPU work in Python, so threads
in one process would only take turns on its interpreter lock. The proxy absorbs slow
clients and keeps their connections open, so the workers never wait on a network.
"""

import multiprocessing
import os


def _positive(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = _positive("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
# Load the application once, in the master, and fork the workers from it: what start-up
# loaded and froze (config.runtime) stays shared between them, about half of each
# worker's memory (two workers after 600 till requests: 294 MB in all instead of 457),
# and a replaced worker starts at once. Nothing opens a connection or a thread at load.
preload_app = True
# A request running longer than this is killed with its worker (a synchronous worker
# cannot tell a stuck request from a long one): long enough for a back-office import or
# a streamed CSV export of millions of members, far beyond any till request.
timeout = _positive("GUNICORN_TIMEOUT", 600)
graceful_timeout = 30
# Whose X-Forwarded-* headers gunicorn believes: the proxy's address (docker-compose.yml
# sets "*": only the proxy reaches the web container there).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
