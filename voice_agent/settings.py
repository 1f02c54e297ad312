"""One settings object, read once at start and passed in; no module reads the environment itself.

Our own settings use the ``VOICE_AGENT_`` prefix; vendors' settings keep the vendors' own names
(``OPENAI_API_KEY``, ``TWILIO_AUTH_TOKEN`` ...) so a deployment can reuse what it already has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from platformdirs import user_data_dir
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from voice_agent.crypto.keys import check_lookup_key, parse_encryption_keys
from voice_agent.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = Path(__file__).resolve().parent / "clinic" / "samples"
DEFAULT_CLINIC_FILE = SAMPLES_DIR / "clinica_sao_lucas.yaml"


def _vendor(name: str) -> AliasChoices:
    """Accept a vendor's own variable name (and the field name, for programmatic construction)."""
    return AliasChoices(name)


SECRET_MIN_LENGTH = 16
"""Secrets we verify requests with (a Twilio auth token is 32 characters): anything shorter, or
empty, would let a stranger forge a webhook or guess the chat token."""

VERIFYING_SECRETS = (
    "twilio_auth_token",
    "chat_api_token",
    "call_token_secret",
    "openai_webhook_secret",
)
"""Secrets that let whoever knows them in: refused when shorter than ``SECRET_MIN_LENGTH``."""

CREDENTIALS = ("openai_api_key", "clinic_api_auth_header")
"""Credentials we only send to a vendor: refused when empty (a typo would fail every call)."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the app reachable from this machine only."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def chat_token_problem(host: str, settings: Settings) -> str | None:
    """The web chat trusts a typed phone number: reachable from other machines it needs a token."""
    if settings.chat_api_token is None and not is_loopback(host):
        return (
            "VOICE_AGENT_CHAT_API_TOKEN: required when the app listens on "
            f"{host} (not loopback); the web chat would be open to anyone"
        )
    return None


class Settings(BaseSettings):
    """Every setting of the receptionist. The README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(
        env_prefix="VOICE_AGENT_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,  # an error names the variable, never its (secret) value
    )

    # Storage and clinic data
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL: postgresql://… or sqlite:///PATH; unset: SQLite in the "
        "per-user data folder (VOICE_AGENT_DATA_DIR).",
    )
    clinic_file: Path = Field(
        default=DEFAULT_CLINIC_FILE,
        description="Clinic YAML loaded on first start when the database holds no clinic.",
    )
    timezone: str | None = Field(
        default=None, description="Override of the clinic's timezone (IANA name)."
    )
    prompts_dir: Path = Field(
        default=PROJECT_ROOT / "prompts", description="Folder with prompts/<language>/*.md."
    )

    # Web
    public_url: str | None = Field(
        default=None,
        description="Public https URL Twilio reaches us at; used to check webhook signatures.",
    )
    staff_password_profile: Literal["RFC_9106_LOW_MEMORY", "RFC_9106_HIGH_MEMORY", "CHEAPEST"] = (
        Field(
            default="RFC_9106_LOW_MEMORY",
            description="argon2 cost of console passwords (argon2-cffi profile); CHEAPEST is for "
            "test suites only.",
        )
    )
    host: str = Field(default="127.0.0.1", description="Address `voice-agent serve` binds to.")
    port: int = Field(default=8000, validation_alias=AliasChoices("PORT", "VOICE_AGENT_PORT"))
    insecure_skip_twilio_signature: bool = Field(
        default=False,
        description="Local experiments only: accept unsigned Twilio requests (logged loudly).",
    )
    chat_api_token: SecretStr | None = Field(
        default=None,
        description="Staff bearer token for /api/chat and /chat; unset = loopback clients only.",
    )
    rate_limit_scale: float = Field(
        default=1.0,
        ge=0,
        description="Multiplies every per-client rate limit (0 switches them off, e.g. behind a "
        "proxy that limits already).",
    )
    call_token_secret: SecretStr | None = Field(
        default=None,
        description="Secret that signs per-call media-stream tokens (random per process if unset).",
    )

    # Booking policy
    hold_minutes: int = Field(default=5, ge=1, le=60, description="How long an offer is held.")
    min_notice_minutes: int | None = Field(
        default=None, description="Override of the clinic's minimum booking notice."
    )
    tool_timeout_seconds: float = Field(default=10.0, gt=0, description="Per-tool timeout.")

    # Learned ranking and no-show risk (docs/ranking.md)
    ranking_learned: bool = Field(
        default=True, description="Rank offers with the promoted model when there is one."
    )
    ranking_min_decisions: int = Field(
        default=200, ge=10, description="Settled offer sets needed before a model is trained."
    )
    ranking_retrain_new_decisions: int = Field(
        default=100, ge=1, description="New decisions since the last model for a nightly retrain."
    )
    ranking_model_max_age_days: int = Field(
        default=60, ge=1, description="A model whose newest example is older is stale: rules rank."
    )
    ranking_retrain_hour: int = Field(
        default=3, ge=0, le=23, description="Local hour of the nightly retraining job."
    )

    # OpenAI
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=_vendor("OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(default=None, validation_alias=_vendor("OPENAI_BASE_URL"))
    realtime_model: str = Field(default="gpt-realtime", description="OpenAI Realtime model.")
    realtime_voice: str = Field(default="marin", description="Realtime voice.")
    realtime_vad: Literal["server_vad", "semantic_vad"] = Field(
        default="server_vad", description="Turn detection of the Realtime session."
    )
    transcription_model: str = Field(
        default="gpt-4o-mini-transcribe", description="Caller transcription model."
    )
    text_model: str = Field(default="gpt-4.1-mini", description="Model of the text channel.")
    text_reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = (
        Field(
            default=None,
            description="Reasoning effort of the text model; sent only to models that take it "
            "(conversation/openai_text/models.py).",
        )
    )
    text_verbosity: Literal["low", "medium", "high"] | None = Field(
        default=None, description="Answer verbosity; sent only to models that take it."
    )
    text_store: bool = Field(
        default=True,
        description="Let OpenAI keep the text channel's responses (30 days) and chain turns with "
        "previous_response_id; false resends the conversation's items every request.",
    )
    text_timeout_seconds: float = Field(
        default=20.0, gt=0, description="Per-request timeout of the text model (then offline)."
    )

    # OpenAI Realtime over SIP (the second call transport, docs/sip.md)
    openai_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_vendor("OPENAI_WEBHOOK_SECRET"),
        description="The project webhook's signing secret (whsec_…) for POST /openai/webhook.",
    )
    openai_websocket_base_url: str | None = Field(
        default=None,
        description="Override of the Realtime websocket base (default: derived from the REST "
        "base URL); for a proxy or a local fake serving websockets on another port.",
    )
    openai_sip_uri: str | None = Field(
        default=None,
        description="The project's SIP address, sip:proj_…@sip.api.openai.com;transport=tls: "
        "where Twilio <Dial><Sip> sends calls on the openai_sip transport.",
    )
    voice_transport: Literal["media_streams", "openai_sip"] | None = Field(
        default=None,
        description="Overrides the clinic file's voice_transport for every number.",
    )
    sip_max_calls: int = Field(
        default=50, ge=1, description="SIP calls this process runs at once; more get 486 Busy."
    )
    sip_trust_trunk_caller_id: bool = Field(
        default=False,
        description="Treat the From of a call straight from the SIP trunk as the carrier's "
        "caller id. Off: anyone who knows the project's SIP address can send any From.",
    )
    sip_sideband_retries: int = Field(
        default=3, ge=0, le=10, description="Reconnects to one call's sideband before giving up."
    )

    # Calls
    max_call_seconds: int = Field(default=900, ge=30, description="Hard limit of one call.")
    idle_timeout_seconds: int = Field(
        default=20, ge=5, description="Silence before the caller is prompted, then hung up on."
    )
    tool_filler_after_seconds: float = Field(
        default=1.0, gt=0, description="A slower tool gets a spoken filler."
    )
    relay_fast_path: bool = Field(
        default=True,
        description="Serve the call's two websockets with the relay's fast paths; false uses "
        "the stock uvicorn/websockets implementations (slower, for an upgrade that breaks them).",
    )

    # Twilio
    twilio_account_sid: str | None = Field(
        default=None, validation_alias=_vendor("TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=_vendor("TWILIO_AUTH_TOKEN")
    )
    twilio_api_base: str | None = Field(
        default=None, description="Override of https://api.twilio.com (tests, proxies)."
    )
    twilio_from_number: str | None = Field(
        default=None, description="Clinic's Twilio number for outbound calls and SMS."
    )
    twilio_whatsapp_from: str | None = Field(
        default=None, description="WhatsApp sender, e.g. whatsapp:+5511…"
    )

    # Google
    google_application_credentials: Path | None = Field(
        default=None, validation_alias=_vendor("GOOGLE_APPLICATION_CREDENTIALS")
    )
    google_calendar_endpoint: str | None = Field(default=None)
    google_sheets_endpoint: str | None = Field(default=None)
    google_sheet_id: str | None = Field(default=None, description="Interaction log spreadsheet.")
    google_sheet_tab: str | None = Field(
        default=None, description="Tab of the interaction log (the first tab when unset)."
    )
    google_send_updates: Literal["all", "externalOnly", "none"] = Field(
        default="none", description="Google Calendar sendUpdates on insert/patch/delete."
    )
    google_cancel_mode: Literal["delete", "mark"] = Field(
        default="delete", description="Cancel = delete the event, or mark it cancelled."
    )
    google_event_title: str = Field(
        default="{first_name} · {service}",
        description="Event title; {first_name}, {full_name}, {service}.",
    )
    google_freebusy_cache_seconds: float = Field(default=30.0, ge=0, le=600)
    sheets_mask_phone: bool = Field(default=True, description="Mask phones in the Sheets log.")

    # WhatsApp messages, alerts and the outbox
    whatsapp_confirmations: bool = Field(
        default=True, description="Send booking confirmations to patients on WhatsApp."
    )
    whatsapp_confirmation_template_sid: str | None = Field(
        default=None, description="ContentSid (HX…) used outside WhatsApp's 24-hour window."
    )
    whatsapp_alert_template_sid: str | None = Field(
        default=None, description="ContentSid for alerts when the doctor's window is closed."
    )
    whatsapp_reminder_template_sid: str | None = Field(
        default=None,
        description="ContentSid of the 'reply 1/2/3' confirmation request ({{1}} first name, "
        "{{2}} date and time, {{3}} doctor, {{4}} address), used outside the 24-hour window.",
    )
    whatsapp_code_template_sid: str | None = Field(
        default=None,
        description="WhatsApp authentication template for identity codes ({{1}} = the code); "
        "without it the code goes as free text (inside the 24-hour window) or by SMS.",
    )
    confirmation_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often due confirmation steps are looked for."
    )
    confirmation_ring_seconds: int = Field(
        default=25, ge=5, le=600, description="How long a confirmation call rings."
    )
    alert_dedup_minutes: int = Field(default=30, ge=1, description="One alert per kind per …")
    alert_max_per_hour: int = Field(default=12, ge=1, description="Alerts sent per hour at most.")
    outbox_max_attempts: int = Field(default=10, ge=1, description="Then a dead letter.")
    outbox_interval_seconds: float = Field(default=5.0, gt=0, description="Delivery job period.")
    reconcile_interval_minutes: int = Field(default=60, ge=1, description="Calendar drift check.")

    # The clinic's own REST booking API (calendar_backend: clinic_api)
    clinic_api_url: str | None = Field(default=None, description="Base URL of the clinic API.")
    clinic_api_auth_header: SecretStr | None = Field(
        default=None, description="e.g. 'Authorization: Bearer …' or 'X-Api-Key: …'."
    )
    clinic_api_timeout_seconds: float = Field(default=10.0, gt=0)
    clinic_api_mapping_file: Path | None = Field(
        default=None, description="YAML/JSON: paths, field names and error codes of the API."
    )

    # Privacy: patient data at rest (voice_agent.crypto). Unset on SQLite = a key file beside
    # the database (0600, created once); PostgreSQL and production must set both keys.
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys (comma-separated, newest first) encrypting patient fields; "
        "`voice-agent keys generate` makes one.",
    )
    lookup_key: SecretStr | None = Field(
        default=None,
        description="Secret (≥ 32 characters) of the keyed hash used to find patients by phone.",
    )
    retention_interval_minutes: int = Field(
        default=360, ge=1, description="How often data past the clinic's retention is purged."
    )

    @field_validator("encryption_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_encryption_keys(value.get_secret_value())  # a short or invalid key stops start
        return value

    @field_validator("lookup_key")
    @classmethod
    def _long_lookup_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_lookup_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _privacy_keys_pair(self) -> Settings:
        if (self.encryption_keys is None) != (self.lookup_key is None):
            raise ValueError(
                "VOICE_AGENT_ENCRYPTION_KEYS and VOICE_AGENT_LOOKUP_KEY must be set together"
            )
        return self

    # Patients told in writing, delivery failures, data folder (ops)
    patient_message_channel: Literal["whatsapp", "sms"] = Field(
        default="whatsapp",
        description="How patients are told of bookings, moves and cancellations (when Twilio "
        "is configured; see VOICE_AGENT_WHATSAPP_CONFIRMATIONS).",
    )
    whatsapp_booked_templates: dict[str, str] = Field(
        default_factory=dict,
        description='ContentSid per language for "booked" outside the 24-hour window, JSON: '
        '{"pt-BR": "HX…", "ru": "HX…"} ({{1}} first name, {{2}} date and time, {{3}} doctor).',
    )
    whatsapp_rescheduled_templates: dict[str, str] = Field(
        default_factory=dict,
        description='ContentSid per language for "moved" ({{4}}: the old date and time).',
    )
    whatsapp_cancelled_templates: dict[str, str] = Field(
        default_factory=dict, description='ContentSid per language for "cancelled".'
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("voice-agent", appauthor=False)),
        description="Per-user data folder; the embedded SQLite database lives here.",
    )

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        """No database configured: SQLite in the per-user data folder, whatever the cwd."""
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'voice-agent.db'}"
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value:
            return value  # the embedded default, filled in once data_dir is known
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
        return value

    @field_validator("public_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (Twilio signs the public URL)")
        return value.rstrip("/")

    @field_validator(*VERIFYING_SECRETS)
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        secret = value.get_secret_value()
        if not secret.strip():
            raise ValueError("is set but empty; unset it or give the real secret")
        if len(secret) < SECRET_MIN_LENGTH or secret != secret.strip():
            raise ValueError(
                f"too short or padded: use at least {SECRET_MIN_LENGTH} characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return value

    @field_validator(*CREDENTIALS)
    @classmethod
    def _non_empty_credential(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is set but empty; unset it or give the real credential")
        return value

    @model_validator(mode="after")
    def _chat_token_off_loopback(self) -> Settings:
        problem = chat_token_problem(self.host, self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _twilio_pair(self) -> Settings:
        if bool(self.twilio_account_sid) != bool(self.twilio_auth_token):
            raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set together")
        return self

    @property
    def openai_enabled(self) -> bool:
        return self.openai_api_key is not None

    @property
    def twilio_enabled(self) -> bool:
        return self.twilio_auth_token is not None


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; a bad value stops start-up with the setting's name."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():  # the message only: never the value, which may be a secret
            message = error["msg"].removeprefix("Value error, ")
            field = ".".join(str(part) for part in error["loc"])
            problems.append(f"{_env_name(field)}: {message}" if field else message)
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return f"VOICE_AGENT_{field.upper()}"
