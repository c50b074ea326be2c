"""When the window syncs usage and rewards, and what the Rewards page and status bar then show.

Syncs run at start, every N minutes (Settings) and on F5 / the page's Sync button; the page
shows the catalogue's synced copy (no network) whenever it is opened. Once a sync's numbers
are shown, its share of the evidence (the events behind the entries) is read and checked on
a worker, so the sync itself never waits for it. The automatic syncs are
quiet (an unreachable registry is a status-bar line, not a dialog) and never ask for a
passphrase: a key in an encrypted file that this session has not unlocked waits for F5.

No widgets are built here: the window connects the signals to its status bar and hands over
the Rewards page once it exists (it is built on first visit).
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from app.domain.errors import RegistryUnavailable
from app.domain.units import plural
from app.services.registry_probe import check_registry
from app.ui.dialogs.key_unlock import KeyAction
from app.ui.text import as_utc

if TYPE_CHECKING:
    from PySide6.QtWidgets import QComboBox

    from app.services.evidence import EvidenceReport
    from app.services.rewards import RewardsOverview
    from app.services.usage_history import CsvReport
    from app.ui.adapters.services import Services
    from app.ui.adapters.tasks import TaskRunner
    from app.ui.dialogs.key_unlock import KeyUnlocker
    from app.ui.errors import ErrorPresenter

log = logging.getLogger(__name__)


class RewardsPage(Protocol):
    """What this needs of the Rewards page (app.ui.pages.rewards_view.RewardsView)."""

    scope: QComboBox  # its data: the registry contribution id shown, or None for all

    def set_syncing(self, busy: bool) -> None: ...
    def set_offline(self, reason: str | None) -> None: ...
    def show_overview(self, overview: RewardsOverview | None) -> None: ...
    def show_scoped(self, overview: RewardsOverview | None) -> None: ...


class RewardsSync(QObject):
    syncLabel = Signal(str)  # the status bar's "Last sync: …" text
    message = Signal(str, int)  # a transient status-bar message and its timeout (ms)
    registryUnavailable = Signal(object)  # a sync found the registry unreachable
    refreshRequested = Signal()  # a sync also re-reads the catalogue and the registry state
    evidenceChecked = Signal(object)  # an EvidenceReport: the share checked after a sync

    def __init__(
        self,
        services: Services,
        runner: TaskRunner,
        errors: ErrorPresenter,
        unlocker: KeyUnlocker,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.runner = runner
        self.errors = errors
        self.unlocker = unlocker
        self.page: RewardsPage | None = None
        self.syncing = False
        self.evidence_running = False  # the evidence share after a sync is on a worker
        self._quiet = False  # the automatic first sync fails without a dialog
        self._last_ok: datetime | None = None  # the copy's last sync, for the status bar
        self._offline: str | None = None  # why the registry was last unreachable
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.auto_sync)

    def attach(self, page: RewardsPage) -> None:
        """The Rewards page now exists: it learns whether the registry is offline."""
        self.page = page
        if self._offline is not None:
            page.set_offline(self._offline)

    def set_offline(self, reason: str | None) -> None:
        """The registry is unreachable (`reason`) or reachable again (None)."""
        self._offline = reason
        if self.page is not None:  # it keeps showing what is stored, saying from when
            self.page.set_offline(reason)

    # -- the page ------------------------------------------------------------------------
    def load(self) -> None:
        """The Rewards page from the catalogue's synced copy (no network)."""
        page = self.page
        if page is None:
            return

        def loaded(overview: RewardsOverview | None) -> None:
            page.show_overview(overview)
            last = overview.last_sync if overview is not None else None
            if last is not None:
                self._last_ok = last
                if not self.syncing:
                    self.syncLabel.emit(self._label())
            if overview is not None and overview.last_sync is None and not self.syncing:
                # Never synced with this registry: fetch now, once. Offline, that is no reason
                # for a dialog: the status bar says so and F5 retries.
                self._quiet = True
                self.sync()

        self.runner.start(
            self.services.rewards.overview, on_result=loaded, on_error=self.errors.show
        )

    def scope(self, contribution_id: str | None) -> None:
        """The page's scope picker: one contribution's numbers, or all (None)."""
        page = self.page
        if page is None:
            return

        def loaded(overview: RewardsOverview | None) -> None:
            if page.scope.currentData() == contribution_id:  # not a stale answer
                page.show_scoped(overview)

        self.runner.start(
            self.services.rewards.overview,
            contribution_id,
            on_result=loaded,
            on_error=self.errors.show,
        )

    def export_csv(
        self, path: str, since: date | None, until: date | None, contribution_id: str | None
    ) -> None:
        """The Rewards page's CSV export, on a worker: the same service as the CLI's."""

        def saved(report: CsvReport) -> None:
            self.message.emit(f"Saved {report.rows:,} rows to {path}", 8000)

        self.runner.start(
            self.services.rewards.export_csv,
            path,
            since,
            until,
            contribution_id,
            on_result=saved,
            on_error=self.errors.show,
        )

    def export_evidence(self, path: str) -> None:
        """The banner's "Save evidence…": the CLI's `audit --export`, on a worker."""

        def saved(_result: object) -> None:
            self.message.emit(f"Saved the verification evidence to {path}", 8000)

        self.runner.start(
            self.services.rewards.export_evidence, path, on_result=saved, on_error=self.errors.show
        )

    def acknowledge(self) -> None:
        """The banner's "Acknowledge…": the CLI's `audit --acknowledge`, then the page again."""

        def done(count: int) -> None:
            self.message.emit(
                f"Acknowledged {plural(count, 'failure')}: kept with the evidence", 8000
            )
            self.load()

        self.runner.start(
            self.services.rewards.acknowledge_failures, on_result=done, on_error=self.errors.show
        )

    # -- syncing -------------------------------------------------------------------------
    def sync(self) -> None:
        """F5: refresh the catalogue and the registry state, then pull usage and rewards."""
        self.refreshRequested.emit()
        if self.syncing:
            return
        self.syncing = True
        if self.page is not None:
            self.page.set_syncing(True)
        self.syncLabel.emit("Syncing…")
        self.unlocker.run(
            KeyAction(
                "sync usage and rewards",
                self.services.rewards.sync,
                on_result=self._synced,
                on_error=self._failed,
                on_cancel=self._cancelled,
                preflight=self._preflight,
            )
        )

    def set_interval(self, minutes: int) -> None:
        """Sync every `minutes` (0: only at start and on F5)."""
        self.timer.stop()
        if minutes > 0:
            self.timer.start(minutes * 60_000)

    def auto_sync(self) -> None:
        """The sync at start and every N minutes: quiet when the registry is unreachable (the
        Rewards page says "Offline — data from …"), and never a passphrase prompt."""
        if self.syncing:
            return

        def decided(state: tuple[bool, bool, datetime | None]) -> None:
            unattended, locked, last = state
            if last is not None:
                self._last_ok = last
            if self.syncing:
                return
            if unattended:
                self._quiet = True
                self.sync()
            elif last is not None or locked:
                # Say what is shown and why it is not refreshed (F5 asks for the passphrase).
                self.syncLabel.emit(self._label(" · key locked (F5 to sync)" if locked else ""))

        self.runner.start(
            self._start_state,
            on_result=decided,
            on_error=lambda exc: log.warning("automatic sync skipped: %s", exc),
        )

    def _start_state(self) -> tuple[bool, bool, datetime | None]:
        """Whether a sync can run without asking, whether the key is locked in its file, and
        when the copy last synced (no network)."""
        unattended = self._can_sync_unattended()
        locked = not unattended and self.services.identity.key_in_file()
        return unattended, locked, self.services.rewards.last_sync()

    def _label(self, suffix: str = "") -> str:
        last = self._last_ok
        when = f"{as_utc(last).astimezone():%H:%M}" if last is not None else "never"
        return f"Last sync: {when}{suffix}"

    def _can_sync_unattended(self) -> bool:
        from app.services.rewards import current_owner

        identity = self.services.identity
        if current_owner(self.services.ctx) is None:
            return False
        return not identity.key_in_file() or self.unlocker.remembered

    def _preflight(self) -> None:
        """On a worker, before the key is asked for: an unreachable registry is reported as
        that (RegistryUnavailable), not as a locked key. Without an identity there is
        nothing to sync, so nothing to check."""
        from app.services.rewards import current_owner

        if current_owner(self.services.ctx) is not None:
            check_registry(self.services.ctx.registry_url)

    def _finished(self, label: str) -> None:
        self.syncing = False
        self.syncLabel.emit(label)
        if self.page is not None:
            self.page.set_syncing(False)

    def _cancelled(self) -> None:
        self._quiet = False
        self._finished(self._label(" · key locked"))

    def _synced(self, overview: RewardsOverview | None) -> None:
        self._quiet = False
        self._last_ok = datetime.now().astimezone()
        self._finished(self._label())
        if self.page is not None:
            self.page.show_overview(overview)
        if overview is None:
            self.message.emit(
                "Catalogue refreshed. Create your identity to sync usage and rewards.", 6000
            )
            return
        self._continue_evidence()

    def _continue_evidence(self) -> None:
        """The sync's numbers are shown: now, on a worker, its bounded share of the events
        behind the entries (read and checked against the local files), continuing where the
        last share stopped; the status bar says what it checked."""
        self.evidence_running = True

        def checked(report: EvidenceReport | None) -> None:
            self.evidence_running = False
            if report is None:
                return
            self.evidenceChecked.emit(report)
            if report.events:
                left = report.entries_left
                more = f"; {left:,} entries left for the next syncs" if left else ""
                self.message.emit(
                    f"Evidence: {report.events:,} events checked against your files{more}", 8000
                )

        def failed(exc: BaseException) -> None:
            self.evidence_running = False
            log.warning("evidence not continued: %s", exc)
            self.message.emit(f"Evidence not checked: {exc}", 8000)

        self.runner.start(
            self.services.rewards.continue_evidence, on_result=checked, on_error=failed
        )

    def _failed(self, exc: BaseException) -> None:
        kept = self._last_ok
        self._finished(
            "Last sync: failed"
            + (f" (data from {as_utc(kept).astimezone():%H:%M})" if kept is not None else "")
        )
        offline = isinstance(exc, RegistryUnavailable)
        if offline:
            self.registryUnavailable.emit(exc)
        if self._quiet:
            self._quiet = False
            why = "the registry is offline" if offline else exc
            self.message.emit(f"Usage and rewards not synced: {why}", 8000)
            return
        self.errors.show(exc)
