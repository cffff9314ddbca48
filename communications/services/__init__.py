from communications.services.delivery import (  # noqa: F401
    DispatchReport,
    address_for,
    cascade_advance,
    dispatch_batch,
    fallbacks_due,
    message_send,
    messages_cancel,
    status_updates_apply,
    statuses_poll,
    test_message_send,
)
