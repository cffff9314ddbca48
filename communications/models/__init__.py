from communications.models.chains import (  # noqa: F401
    Chain,
    ChainEntry,
    ChainStatus,
    ChainStep,
    EntryState,
    Reentry,
)
from communications.models.delivery import (  # noqa: F401
    REF_NEW_SQL,
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
    ref_new,
)
from communications.models.feedback import (  # noqa: F401
    Feedback,
    FeedbackAuthor,
    FeedbackMessage,
    FeedbackStatus,
    FeedbackTopic,
)
from communications.models.mailings import (  # noqa: F401
    Campaign,
    CategoryOptOut,
    Mailing,
    MailingCategory,
    MailingRecipient,
    MailingStatus,
    Schedule,
    SubscriptionChange,
    UnsubscribeReason,
)
from communications.models.regular import RegularKind, RegularTask  # noqa: F401
from communications.models.templates import CHANNEL_PARTS, MessageTemplate, Watcher  # noqa: F401
