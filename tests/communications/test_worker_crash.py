"""A real Celery worker on Redis is killed mid-batch: nothing is lost, and the provider,
which deduplicates by our message reference, delivers nothing twice."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from communications.models import ChannelPolicy, Message, Origin, Purpose, Status
from communications.tasks import dispatch
from tests.gateways.peers import HttpPeer, PeerResponse

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


class SlowDedupingProvider:
    """api.devino.online's protocol; each request takes a second; a repeated
    ``options.ref`` is answered with its first id and not delivered again."""

    def __init__(self):
        self.lock = threading.Lock()
        self.submitted: Counter = Counter()
        self.delivered: Counter = Counter()
        self.ids: dict[str, str] = {}
        self.requests = 0
        self.peer = HttpPeer(self.handle)

    def handle(self, request):
        with self.lock:
            self.requests += 1
        time.sleep(1.0)
        result = []
        with self.lock:
            for message in request.json()["messages"]:
                ref = message["options"]["ref"]
                self.submitted[ref] += 1
                if ref not in self.ids:
                    self.ids[ref] = str(len(self.ids) + 1)
                    self.delivered[ref] += 1
                result.append({"code": "OK", "messageId": self.ids[ref]})
        return PeerResponse(200, {"result": result})


def start_worker(queue: str) -> subprocess.Popen:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DELIVERY_LEASE_SECONDS": "3",
        "CELERY_QUEUE": queue,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis: set REDIS_URL (CI does)")
def test_killing_the_worker_mid_batch_loses_and_duplicates_nothing(make_gateway, make_member):
    # given: 1,200 queued messages (three batches of 500 and one of 200), and no quiet
    # hours: the worker runs on the wall clock, which may be night in Moscow
    ChannelPolicy.objects.update_or_create(channel="sms", defaults={"quiet_start": None, "quiet_end": None})
    provider = SlowDedupingProvider()
    queue = f"test-crash-{uuid.uuid4().hex[:8]}"
    members = [make_member(consents=("sms",)) for _ in range(1200)]
    with provider.peer as peer:
        gateway = make_gateway(
            "devino_sms", config={"base_url": peer.url, "api_key": "k", "timeout": 30}, rate_limit=100000
        )
        now = timezone.now()
        Message.objects.bulk_create(
            [
                Message(
                    member=m,
                    channel="sms",
                    gateway=gateway,
                    address=m.phone,
                    content={"text": "hi"},
                    purpose=Purpose.SERVICE,
                    origin=Origin.MAILING,
                    origin_id=1,
                    status=Status.QUEUED,
                    status_at=now,
                    next_attempt_at=now,
                )
                for m in members
            ]
        )
        # when: a worker starts on them and is killed while its first request is in flight
        first = start_worker(queue)
        try:
            dispatch.apply_async(args=[gateway.pk], queue=queue)
            wait_for(lambda: provider.requests >= 1, 60, "the first request")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
        leased = Message.objects.filter(status=Status.SENDING).count()
        assert leased >= 500  # the dead worker's batch is stuck in "sending" under its lease
        # and another worker takes over once the lease has run out
        time.sleep(3.5)
        second = start_worker(queue)
        try:
            dispatch.apply_async(args=[gateway.pk], queue=queue)
            wait_for(
                lambda: not Message.objects.exclude(status=Status.SENT).exists(),
                90,
                "every message to be sent",
            )
        finally:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(10)
    # then: nothing lost, nothing delivered twice
    refs = {str(r) for r in Message.objects.values_list("ref", flat=True)}
    assert Message.objects.filter(status=Status.SENT).count() == 1200
    assert set(provider.delivered) == refs and max(provider.delivered.values()) == 1
    resubmitted = {ref for ref, n in provider.submitted.items() if n > 1}
    assert resubmitted  # the killed batch really was sent again after the lease ...
    stale = set(Message.objects.filter(attempts__gt=1).values_list("ref", flat=True))
    assert {uuid.UUID(r) for r in resubmitted} <= stale  # ... as a second attempt of the same messages
