"""The embedded broker of ``make run``: kombu's filesystem transport, with whole messages.

kombu writes a message file in place under its final name and the reading side takes
any file with that name without a lock, so a worker polling while a web request writes
a task can read a file that is still empty and stop on the JSON error. Here a message is
written under a name the queue does not match, flushed, and renamed into the queue
folder (``os.replace`` is atomic within one file system): a reader sees a whole message
or none. Production uses Redis (``REDIS_URL``) and does not come here.
"""

import contextlib
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

#: Appended to a message's name while it is written; ``_get`` matches names ending in
#: ``.<queue>.msg`` only, so a partly written file is never taken.
PARTIAL = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
