"""The embedded broker (``config/broker.py``): a worker polling while a message is
written never takes a partly written file."""

import threading
import time
from queue import Empty

import pytest
from kombu import Connection

BIG = "x" * 400_000  # large enough that writing it takes several system calls


def _connection(folder, transport):
    return Connection(
        "filesystem://",
        transport=transport,
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder),
            "store_processed": False,
        },
    )


def test_the_embedded_broker_is_the_whole_message_transport(settings):
    from config.celery import app

    if settings.CELERY_BROKER_URL != "filesystem://":
        pytest.skip("REDIS_URL is set: the broker is Redis")
    from config.broker import Transport

    assert app.connection_for_write().get_transport_cls() is Transport


def test_a_reader_polling_while_messages_are_written_gets_each_one_whole(tmp_path):
    sent = 300
    with (
        _connection(tmp_path, "config.broker:Transport") as writer_conn,
        _connection(tmp_path, "config.broker:Transport") as reader_conn,
    ):
        writer, reader = writer_conn.default_channel, reader_conn.default_channel
        errors: list[BaseException] = []

        def write():
            try:
                for n in range(sent):
                    writer._put("q", {"n": n, "body": BIG})
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        received = []
        deadline = time.monotonic() + 60
        while len(received) < sent and time.monotonic() < deadline:
            try:
                received.append(reader._get("q"))
            except Empty:
                if errors:
                    break
        thread.join()
    assert not errors
    assert sorted(m["n"] for m in received) == list(range(sent))
    assert all(m["body"] == BIG for m in received)
    assert not list(tmp_path.iterdir()), "no partial file is left behind"
