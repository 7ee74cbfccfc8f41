"""Settings from ``REFFLOW_*`` environment variables, with embedded defaults.

One ``Settings`` object is shared by the web app, the Celery workers and the
CLI. With no database URL the service uses a SQLite file in the data dir; with
no broker URL ``refflow run`` starts an embedded Redis (see ``embedded.py``).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, fields, replace
from pathlib import Path


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Every setting refflow reads. Field ``foo`` comes from ``REFFLOW_FOO``."""

    env: str = "embedded"  # "embedded" (refflow run, tests) or "production"
    data_dir: Path = Path("refflow-data")
    database_url: str = ""
    database_schema: str = ""  # PostgreSQL search_path (one schema per deployment or test run)
    db_connect_timeout_seconds: int = 3  # PostgreSQL connect (psycopg's minimum is 2)
    db_statement_timeout_seconds: float = 10.0  # server-side statement_timeout; migrations: none
    db_pool_timeout_seconds: float = 3.0  # waiting for a free pooled connection
    broker_url: str = ""
    delivery_max_attempts: int = 200  # a backstop: the retry window decides first
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0  # the longest wait between two attempts
    retry_window_hours: float = 24.0  # how long a delivery is retried (a channel may say otherwise)
    webhook_retry_hours: float = 24.0  # how long a webhook message is retried from its event
    delivery_lease_seconds: float = 30.0  # a sending worker renews its claim this often x3
    resend_in_doubt: bool = False  # True: resend a delivery whose sender died (same Message-ID)
    plan_due_days: int = 30  # the dashboard lists referrals whose plan has not reached the referrer
    relay_interval_seconds: float = 0.1
    smtp_url: str = ""
    smtp_from: str = "refflow@localhost"
    smtp_timeout: float = 30.0
    fax_transport: str = "spool"
    fax_resolution: str = "fine"  # fine = 204x196 dpi, normal = 204x98
    fax_hylafax_host: str = "127.0.0.1"  # the hylafax transport: hfaxd's address ...
    fax_hylafax_port: int = 4559  # ... its client protocol port
    fax_hylafax_user: str = "refflow"  # the user hfaxd's hosts.hfaxd admits
    fax_hylafax_modem: str = ""  # a modem (tty name) or class; empty: any modem
    fax_check_seconds: float = 20.0  # how often a fax held by the fax server is checked
    fax_inbox_poll: bool = False  # True: fetch received faxes from hfaxd's recvq (fax_hylafax_*)
    fax_inbox_poll_seconds: float = 30.0
    fax_retention_days: int = 90  # a handled (or archived) received fax is purged after this
    # where documents' bytes live: file:PATH (default: file:<data dir>/document-store)
    # or s3://BUCKET/PREFIX (docs/operations.md, "Where documents live")
    document_store: str = ""
    document_store_endpoint_url: str = ""  # an S3-compatible server; empty: AWS
    document_store_region: str = ""
    document_store_access_key_id: str = ""  # empty: boto3's chain (AWS_* variables, role)
    document_store_secret_access_key: str = ""
    document_store_sse: str = ""  # S3 server-side encryption: AES256 or aws:kms; empty: none
    # documents of completed, rejected or cancelled referrals are deleted from the
    # store this long after the referral closed; 0: kept
    document_retention_days: int = 0
    tessdata_dir: str = ""  # Tesseract's language data; empty: found where Debian puts it
    paper: str = "letter"  # letter or a4
    secret_key: str = ""
    clinic_name: str = "refflow Rehabilitation Clinic"
    clinic_phone: str = "+1 763 555 0150"
    clinic_fax: str = "+1 763 555 0101"
    clinic_timezone: str = "America/Chicago"
    clinic_locale: str = "en_US"  # the documents' dates, numbers and units (en_US: lb, inches)
    handout_large_print: bool = False  # True: the patient handout's body text is 16 pt (else 14 pt)
    allow_unreviewed_translations: bool = False  # True: a patient may get an unreviewed translation
    public_url: str = "http://127.0.0.1:8000"  # where patients open their page (/p/<token>)
    patient_link_days: int = 180  # a patient link expires this long after it was made
    patient_session_minutes: int = 60  # the patient's page stays open this long after the date of birth
    disabled_plugins: tuple[str, ...] = ()
    load_plugins: tuple[str, ...] | None = None
    max_body_bytes: int = 1024 * 1024
    idempotency_retention_hours: int = 48
    session_idle_minutes: int = 30
    intake_rate_limit: str = "120/minute"
    login_rate_limit: str = "10/minute"
    login_free_failures: int = 5  # per account, then a growing delay
    login_address_free_failures: int = 20  # per client address, then a growing delay
    login_delay_base_seconds: float = 1.0  # doubles with every further failure
    login_delay_max_seconds: float = 900.0
    login_forget_seconds: float = 3600.0  # failures forgotten this long after the delay
    oidc_issuer: str = ""  # single sign-on for staff (OpenID Connect); empty: passwords only
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_provider_name: str = "single sign-on"  # the sign-in page: "Sign in with <this>"
    stuck_after_seconds: int = 30  # work not moving for this long is queued again
    task_time_limit: int = 300  # seconds; a delivery lease outlives it by a minute
    # GET /metrics answers only "Authorization: Bearer <this>" when set (empty: open,
    # for a metrics port reachable only by the scraper; docs/operations.md)
    metrics_token: str = ""
    alert_email: str = ""  # alerts (ops.alerts) are emailed here through REFFLOW_SMTP_URL ...
    alert_webhook_url: str = ""  # ... and/or POSTed here, signed (Standard Webhooks)
    alert_webhook_secret: str = ""  # the alert webhook's signing secret (whsec_...)
    alert_check_seconds: float = 30.0  # how often the scheduler evaluates the alert conditions
    alert_window_minutes: float = 10.0  # a channel's failure rate is counted over this window
    alert_channel_failures: int = 5  # a channel's incident starts at this many failed attempts ...
    alert_channel_failure_percent: float = 50.0  # ... when they are this share of its attempts
    alert_channel_clear_successes: int = 3  # ... and clears after this many sends in a row
    alert_queue_backlog: int = 500  # messages waiting in a broker queue (clears at half)
    alert_outbox_backlog: int = 500  # outbox messages due but not relayed (clears at half)
    alert_no_worker_seconds: float = 60.0  # no worker online for this long
    alert_review_hours: float = 24.0  # a referral waiting in needs_review longer than this
    log_level: str = "INFO"

    # -- derived ------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        return self.env != "production"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the common "postgresql://" and "postgres://" spellings.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix):]
            return url
        return f"sqlite:///{(self.data_dir / 'refflow.db').resolve()}"

    @property
    def documents_dir(self) -> Path:
        return self.data_dir / "documents"

    @property
    def document_store_url(self) -> str:
        return self.document_store or f"file:{(self.data_dir / 'document-store').resolve()}"

    @property
    def fax_spool_dir(self) -> Path:
        return self.data_dir / "fax-spool"

    @property
    def mail_outbox_dir(self) -> Path:
        return self.data_dir / "mail-outbox"

    def with_overrides(self, **overrides) -> Settings:
        return replace(self, **overrides)


def load_settings(environ: dict[str, str] | None = None, *, create_data_dir: bool = True,
                  **overrides) -> Settings:
    """Read ``Settings`` from the environment (``REFFLOW_`` prefix), then apply overrides.

    Raises ``ConfigError`` with a message naming the variable when a value is
    malformed or a production setting is missing. On embedded defaults the
    secret key lives in the data dir: with ``create_data_dir`` (the service's
    own processes) it is made there the first time; without it (commands
    that only use a service's data) a missing one is an error, so such a
    command run from the wrong folder creates nothing there.
    """
    environ = os.environ if environ is None else environ
    values: dict = {}
    for f in fields(Settings):
        key = f"REFFLOW_{f.name.upper()}"
        if key not in environ:
            continue
        raw = environ[key]
        try:
            if f.name in {"disabled_plugins", "load_plugins"}:
                values[f.name] = _list(raw)
            elif f.type in ("Path",):
                values[f.name] = Path(raw)
            elif f.type in ("int",):
                values[f.name] = int(raw)
            elif f.type in ("float",):
                values[f.name] = float(raw)
            elif f.type in ("bool",):
                values[f.name] = _bool(raw)
            else:
                values[f.name] = raw
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    values.update(overrides)
    settings = Settings(**values)
    return _finish(settings, create_data_dir=create_data_dir)


def _finish(settings: Settings, *, create_data_dir: bool) -> Settings:
    if settings.env not in {"embedded", "production"}:
        raise ConfigError("REFFLOW_ENV must be 'embedded' or 'production'")
    if settings.fax_resolution not in {"fine", "normal"}:
        raise ConfigError("REFFLOW_FAX_RESOLUTION must be 'fine' or 'normal'")
    if settings.paper not in {"letter", "a4"}:
        raise ConfigError("REFFLOW_PAPER must be 'letter' or 'a4'")
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", settings.clinic_locale):
        raise ConfigError("REFFLOW_CLINIC_LOCALE must be a locale such as en_US or en_GB")
    if not settings.document_store_url.startswith(("file:/", "s3://")) \
            or settings.document_store_url in ("file:/", "s3://"):
        raise ConfigError("REFFLOW_DOCUMENT_STORE must be file:/ABSOLUTE/PATH or "
                          "s3://BUCKET/PREFIX")
    if settings.document_store_sse not in {"", "AES256", "aws:kms"}:
        raise ConfigError("REFFLOW_DOCUMENT_STORE_SSE must be AES256 or aws:kms (or empty)")
    if settings.document_retention_days < 0:
        raise ConfigError("REFFLOW_DOCUMENT_RETENTION_DAYS must be 0 (keep) or more")
    if settings.delivery_lease_seconds < 3:
        raise ConfigError("REFFLOW_DELIVERY_LEASE_SECONDS must be 3 or more")
    if settings.database_url:
        _check_database_url(settings.sqlalchemy_url)
    if settings.alert_webhook_url and not settings.alert_webhook_secret:
        raise ConfigError("REFFLOW_ALERT_WEBHOOK_URL needs REFFLOW_ALERT_WEBHOOK_SECRET "
                          "(a whsec_... secret the receiver checks the signature with)")
    _check_oidc(settings)
    if not settings.secret_key:
        if not settings.embedded:
            raise ConfigError(
                "REFFLOW_SECRET_KEY is required in production "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        settings = replace(settings, secret_key=_embedded_secret(settings.data_dir,
                                                                 create=create_data_dir))
    if not settings.embedded:
        if not settings.database_url:
            raise ConfigError("REFFLOW_DATABASE_URL is required in production")
        if not settings.broker_url:
            raise ConfigError("REFFLOW_BROKER_URL is required in production")
    return settings


def _check_oidc(settings: Settings) -> None:
    """Single sign-on needs all three of issuer, client id and secret, or none."""
    given = {"REFFLOW_OIDC_ISSUER": settings.oidc_issuer,
             "REFFLOW_OIDC_CLIENT_ID": settings.oidc_client_id,
             "REFFLOW_OIDC_CLIENT_SECRET": settings.oidc_client_secret}
    if not any(given.values()):
        return
    missing = [key for key, value in given.items() if not value]
    if missing:
        raise ConfigError(f"single sign-on needs {', '.join(missing)} too "
                          "(or leave all REFFLOW_OIDC_* settings empty)")
    scheme = settings.oidc_issuer.split("://", 1)[0]
    if scheme not in {"https", "http"} or "://" not in settings.oidc_issuer:
        raise ConfigError("REFFLOW_OIDC_ISSUER must be the provider's https:// URL")
    if scheme == "http" and not settings.embedded:
        raise ConfigError("REFFLOW_OIDC_ISSUER must use https:// in production")


DATABASE_URL_FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"


def _check_database_url(url: str) -> None:
    """Only the databases refflow runs on; the message never repeats the URL (it may
    carry a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        scheme = make_url(url).drivername
    except (ArgumentError, ValueError):
        raise ConfigError(f"REFFLOW_DATABASE_URL is not a database URL: use {DATABASE_URL_FORMS}") \
            from None
    if scheme not in {"sqlite", "sqlite+pysqlite", "postgresql+psycopg"}:
        raise ConfigError(f"REFFLOW_DATABASE_URL: {scheme}:// is not supported: "
                          f"use {DATABASE_URL_FORMS}")


def _embedded_secret(data_dir: Path, *, create: bool) -> str:
    """Generate the secret key once and keep it in the data dir (mode 0600)."""
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if not create:
            raise ConfigError(
                f"there is no refflow data in {data_dir.resolve()} (REFFLOW_DATA_DIR, "
                "default ./refflow-data in the current folder): run this where `refflow run` "
                "runs, or set REFFLOW_DATA_DIR to its folder") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)  # first writer wins when several processes start at once
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
