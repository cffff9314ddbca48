"""Settings, read from environment variables.

With nothing set the project runs on its embedded default: SQLite, a Celery broker that
needs no server (kombu's filesystem transport) and file/console delivery, all under
``var/``. ``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY``, ``DEBUG=false`` and
``ALLOWED_HOSTS`` switch to the production shape (see README, "Configuration").
"""

from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=True)

_DEV_SECRET = "dev-only-insecure-secret-key-change-me-in-production-0123456789"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "loyalty",
    "segments",
    "gateways",
    "communications",
    "offers",
    "pos",
    "portal",
]

MIDDLEWARE = [
    "config.health.HealthCheckMiddleware",  # /healthz, /readyz: before host checks and redirects
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "loyalty.middleware.ViewerTimezoneMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
_SQLITE_URL = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url("DATABASE_URL", default=_SQLITE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; IMMEDIATE takes the write
    # lock at BEGIN so two writers queue instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    # A new connection costs its first requests about 40 ms more in all: the server forks a
    # backend that loads its catalog caches table by table, and every hot statement is
    # prepared again. Renewed each minute, that is a burst of slow till requests per web
    # process each minute; the health checks below already replace a broken connection.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Server-side binding with prepared statements: PostgreSQL parses and plans the hot
    # statements (ledger, POS) once per connection instead of on every request. Set
    # DATABASE_PREPARE_THRESHOLD to an empty value behind a transaction-pooling proxy.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["server_side_binding"] = True
    # A database that does not answer fails a connection attempt in seconds, not after the
    # operating system's TCP timeout of minutes with a web worker waiting on it.
    _options["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    _threshold = env.str("DATABASE_PREPARE_THRESHOLD", default="5")
    _options["prepare_threshold"] = int(_threshold) if _threshold else None
    # JIT compilation costs 100-300 ms on the first run of a large query (segment counts,
    # RFM) and saves nothing on the short statements this application runs.
    if not env.bool("DATABASE_JIT", default=False):
        _options["options"] = (_options.get("options", "") + " -c jit=off").strip()
    # The longest a statement of this process may run (empty: no limit). docker-compose
    # gives the web service just under gunicorn's timeout, so a runaway back-office query
    # ends with the request instead of running on after its worker was replaced; Celery
    # workers (RFM, snapshots, mailings) run without it.
    _statement_seconds = env.str("DATABASE_STATEMENT_TIMEOUT", default="")
    if _statement_seconds:
        if not _statement_seconds.isdigit():
            raise environ.ImproperlyConfigured(
                f"DATABASE_STATEMENT_TIMEOUT must be a whole number of seconds, not {_statement_seconds!r}"
            )
        _options["options"] = (
            _options.get("options", "") + f" -c statement_timeout={int(_statement_seconds) * 1000}"
        ).strip()
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str(
        "TEST_DATABASE_NAME", default="test_loyalty"
    )
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache and Celery -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Likewise for the cache: throttling and readiness never hang on a lost Redis.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    # kombu's filesystem transport, writing each message whole (config/broker.py).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- auth, i18n, time -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", _("English")), ("ru", _("Russian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Moscow")

# --- static and media -------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# --- delivery (embedded default: files under var/outbox, mail to files) --------------
OUTBOX_DIR = Path(env.str("OUTBOX_DIR", default=str(VAR_DIR / "outbox")))
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = OUTBOX_DIR / "email"
# Where members' devices and providers reach this site: tracking links, unsubscribe
# pages and provider callbacks are built on it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# How long a dispatch worker holds a claimed batch; a dead worker's messages return to
# the queue after it.
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=300)
# Fernet key for gateway credentials at rest; derived from SECRET_KEY when unset.
GATEWAY_SECRETS_KEY = env.str("GATEWAY_SECRETS_KEY", default="")

# --- security (production shape when DEBUG is false) -----------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
X_FRAME_OPTIONS = "DENY"

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["loyalty.api.permissions.IsApiUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "loyalty.api.problems.problem_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "loyalty.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Requests per API key of the point-of-sale API (pos.auth.ApiKeyRateThrottle).
    "DEFAULT_THROTTLE_RATES": {"pos": env.str("POS_THROTTLE_RATE", default="6000/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty back office API",
    "DESCRIPTION": "REST API for points of sale, online stores and mobile apps.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pos.schema.retry_after_on_429",
    ],
    # Every enum under a name of its own, so a field added elsewhere cannot rename it in
    # the integrators' generated clients (the event-type enums are named by their
    # serializers: their values differ by API).
    "ENUM_NAME_OVERRIDES": {
        "ContactStatusEnum": "loyalty.models.ContactStatus",
        "CardKindEnum": "loyalty.models.CardKind",
        "CardStateEnum": "loyalty.models.CardState",
        "EntryKindEnum": "loyalty.models.EntryKind",
        "GenderEnum": "loyalty.models.Gender",
        "MemberStateEnum": "loyalty.models.MemberState",
        "RegistrationChannelEnum": "loyalty.models.RegistrationChannel",
        "ContactChannelEnum": "loyalty.models.ContactChannel",
        "LanguageEnum": LANGUAGES,
        "FeedbackAuthorEnum": ["member", "operator"],
        "DevicePlatformEnum": "communications.models.delivery.DevicePlatform",
        "SignInCodePurposeEnum": ["sign_in", "register"],
        "AppEventTypeEnum": "portal.api.serializers.APP_EVENTS",
    },
}

# A point-of-sale request's idempotency claim left by a process that died is taken over
# after this many seconds.
POS_IDEMPOTENCY_STALE_SECONDS = env.int("POS_IDEMPOTENCY_STALE_SECONDS", default=300)
# How long bonuses reserved for a receipt (POST /api/v1/pos/receipts/reserve) stay held
# when the till neither confirms nor cancels it; then the receipt is cancelled.
POS_RESERVATION_MINUTES = env.int("POS_RESERVATION_MINUTES", default=30)

# --- the loyalty program --------------------------------------------------------------
LOYALTY = {
    "PROGRAM_NAME": env.str("PROGRAM_NAME", default="Demo loyalty program"),
    # ISO 4217 code of the money the points of sale take; shown next to amounts.
    "CURRENCY": env.str("PROGRAM_CURRENCY", default="RUB"),
    # Region assumed for phone numbers written without a country code.
    "PHONE_REGION": env.str("PHONE_REGION", default="RU"),
    # Card numbers: prefix + random digits + a Luhn check digit, LENGTH digits in all.
    "CARD_NUMBER_PREFIX": env.str("CARD_NUMBER_PREFIX", default="7800"),
    "CARD_NUMBER_LENGTH": env.int("CARD_NUMBER_LENGTH", default=13),
    # Offers: the largest share of a line all discounts may take, and of what is left to
    # pay that bonuses may pay.
    "MAX_LINE_DISCOUNT_SHARE": env.str("MAX_LINE_DISCOUNT_SHARE", default="0.9"),
    "MAX_BONUS_PAYMENT_SHARE": env.str("MAX_BONUS_PAYMENT_SHARE", default="0.5"),
}

# --- the members' personal account ---------------------------------------------------
PORTAL = {
    # One-time codes: digits, minutes valid, wrong tries allowed.
    "CODE_LENGTH": env.int("PORTAL_CODE_LENGTH", default=6),
    "CODE_TTL_MINUTES": env.int("PORTAL_CODE_TTL_MINUTES", default=5),
    "CODE_ATTEMPTS": env.int("PORTAL_CODE_ATTEMPTS", default=5),
    # Throttling of code requests: seconds between two codes to one address, codes per
    # address and per IP address an hour.
    "CODE_RESEND_SECONDS": env.int("PORTAL_CODE_RESEND_SECONDS", default=60),
    "CODES_PER_ADDRESS_HOUR": env.int("PORTAL_CODES_PER_ADDRESS_HOUR", default=5),
    "CODES_PER_IP_HOUR": env.int("PORTAL_CODES_PER_IP_HOUR", default=30),
    # A member's web session ends after this many minutes without a request.
    "SESSION_MINUTES": env.int("PORTAL_SESSION_MINUTES", default=30),
    # The mobile app's tokens live this many days.
    "TOKEN_DAYS": env.int("PORTAL_TOKEN_DAYS", default=90),
    # Bonuses expiring within this many days are shown as "expiring soon".
    "EXPIRING_DAYS": env.int("PORTAL_EXPIRING_DAYS", default=30),
    # Branding: the accent colour, a logo and the support contact shown on every page.
    "BRAND_COLOR": env.str("PORTAL_BRAND_COLOR", default="#2d5be3"),
    "LOGO_URL": env.str("PORTAL_LOGO_URL", default=""),
    "SUPPORT_CONTACT": env.str("PORTAL_SUPPORT_CONTACT", default=""),
    # Feedback attachments: the largest file and the kinds accepted.
    "ATTACHMENT_MAX_BYTES": env.int("PORTAL_ATTACHMENT_MAX_BYTES", default=5 * 1024 * 1024),
    "ATTACHMENT_TYPES": env.list(
        "PORTAL_ATTACHMENT_TYPES", default=[".jpg", ".jpeg", ".png", ".pdf", ".txt", ".webp"]
    ),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
