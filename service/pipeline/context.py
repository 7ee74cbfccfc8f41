"""What every pipeline step runs with: settings, the database, the document
store, the plugins and their channels, the clinic's details, and the publisher
the relay uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from refflow.config import Settings
from refflow.db.session import Database, database_for
from refflow.pipeline import outbox
from refflow.pipeline.outbox import Publisher

WORKER = "worker"  # the timeline's actor for what the pipeline does


class StepError(Exception):
    """A staff action that does not apply (e.g. retrying a delivery already sent)."""


@dataclass
class Pipeline:
    """Everything a step needs. ``publish`` is ``None`` where nothing is sent
    to the broker at once (the web process: the scheduler's relay sends)."""

    settings: Settings
    publish: Publisher | None = None
    db: Database = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.db is None:
            self.db = database_for(self.settings)

    @cached_property
    def pm(self):
        from refflow.plugins.manager import get_plugin_manager

        return get_plugin_manager(self.settings)

    @cached_property
    def channels(self) -> dict:
        from refflow.plugins.manager import channels

        return channels(self.pm, self.settings)

    @cached_property
    def store(self):
        """The document store (``refflow.db.blobstore``) the settings name."""
        from refflow.db.blobstore import store_for

        return store_for(self.settings)

    @cached_property
    def clinic(self):
        from refflow.documents.clinic import ClinicInfo

        return ClinicInfo.from_settings(self.settings)

    def relay(self, ids: list[int] | None = None) -> int:
        """Publish what a commit queued (no-op without a publisher): the
        messages ``ids`` when given, else every due one."""
        if self.publish is None:
            return 0
        return outbox.relay(self.db, self.publish, ids=ids)
