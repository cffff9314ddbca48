from communications.models.delivery import (  # noqa: F401
    ChannelPolicy,
    DeviceToken,
    Message,
    MessagePart,
    MessageStatus,
    Origin,
    Purpose,
    Status,
    Suppression,
    SuppressionReason,
)
