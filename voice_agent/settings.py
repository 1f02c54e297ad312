"""One settings object, read once at start and passed in; no module reads the environment itself.

Our own settings use the ``VOICE_AGENT_`` prefix; vendors' settings keep the vendors' own names
(``OPENAI_API_KEY``, ``TWILIO_AUTH_TOKEN`` ...) so a deployment can reuse what it already has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = Path(__file__).resolve().parent / "clinic" / "samples"
DEFAULT_CLINIC_FILE = SAMPLES_DIR / "clinica_sao_lucas.yaml"


def _vendor(name: str) -> AliasChoices:
    """Accept a vendor's own variable name (and the field name, for programmatic construction)."""
    return AliasChoices(name)


class ConfigurationError(RuntimeError):
    """Raised at start when a setting is missing or wrong; the message names the setting."""


class Settings(BaseSettings):
    """Every setting of the receptionist. The README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(
        env_prefix="VOICE_AGENT_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
    )

    # Storage and clinic data
    database_url: str = Field(
        default="sqlite:///voice_agent.db",
        description="SQLAlchemy URL: SQLite (embedded default) or postgresql://…",
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
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            env_name = _env_name(field)
            problems.append(f"{env_name}: {error['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return f"VOICE_AGENT_{field.upper()}"
