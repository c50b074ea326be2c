"""The Evidence view against a live registry: after a sync with real evidence (exact-match
spans of the contribution's own bytes, retrieval, influence), the detail pane's Evidence…
button opens the view with its counts, statuses, filter and the matched span with its line;
a local file changed since submission shows "your copy changed"."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from app.services.clients import make_client
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync
from tests.integration.faults.helpers import Desk, make_desk, start_registry
from tests.integration.test_evidence import POEM, TABLE, _events
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import post_usage

pytestmark = pytest.mark.slow


def _synced_desk(tmp_path: Path, data_dir: Path) -> tuple[RegistryProcess, Desk, int]:
    operator = Contributor()
    registry = start_registry(tmp_path, "--operator-key", operator.public_key)
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    item = desk.add("poems", {"dover.txt": POEM, "scores.csv": TABLE})
    cid = str(desk.submit(item).registry_id)
    desk.queue().run()
    assert desk.state(item) == "accepted"
    post_usage(registry, operator, _events("g", cid, 5))
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    client = make_client(desk.ctx)
    try:  # the sync the GUI runs (F5 / on start): the same service
        RewardsSync(desk.ctx, client, owner.fingerprint).run(evidence=True)
    finally:
        client.close()
    return registry, desk, item


def _open(qtbot: Any, theme: Any, desk: Desk, item: int) -> tuple[Any, Any]:
    from app.ui.adapters.services import Services
    from app.ui.main_window import MainWindow

    win = MainWindow(Services(desk.ctx), theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.catalogue.model.rowCount() > 0, timeout=10_000)
    win.catalogue.select_item(item)
    pane = win.catalogue.detail
    qtbot.waitUntil(
        lambda: (
            pane.detail is not None
            and pane.detail.summary.id == item
            and pane.evidence_button.isEnabled()
        ),
        timeout=10_000,
    )
    opened: list[Any] = []
    win.evidence_actions.opened.connect(opened.append)
    pane.evidence_button.click()
    qtbot.waitUntil(lambda: bool(opened), timeout=15_000)
    return win, opened[0]


def _texts(dialog: Any, col: int) -> list[str]:
    m = dialog.model
    return [m.data(m.index(r, col)) for r in range(m.rowCount())]


def test_evidence_view_after_a_sync_with_real_evidence(
    qtbot: Any, qtmodeltester: Any, theme: Any, tmp_path: Path, data_dir: Path,
    isolated_keyring: Path,
) -> None:  # fmt: skip
    from app.ui.dialogs.evidence_dialog import COL_STATUS, COL_WHERE

    registry, desk, item = _synced_desk(tmp_path, data_dir)
    try:
        win, dialog = _open(qtbot, theme, desk, item)
        assert dialog.isVisible() and dialog.windowTitle() == "Evidence — poems"
        qtmodeltester.check(dialog.model, force_py=True)
        assert dialog.model.rowCount() == 15  # 5 events × (exact match, retrieval, influence)
        statuses = _texts(dialog, COL_STATUS)
        assert statuses.count("Verified against your files") == 10
        assert statuses.count("Operator-asserted") == 5
        chips = {c.objectName(): c.text() for c in dialog.findChildren(type(dialog.title))}
        assert "10</span> verified against your files" in chips["count-verified"]
        assert "5</span> operator-asserted" in chips["count-operator-asserted"]
        assert not dialog.banner.isVisible()
        where = _texts(dialog, COL_WHERE)
        assert sum(w.startswith("dover.txt, line ") for w in where) == 5
        assert where.count("scores.csv (whole file)") == 5

        # The filter shows one status; the span of an exact match is shown from the file.
        dialog.set_filter("verified")
        assert dialog.model.rowCount() == 10
        row = next(r for r in range(10) if dialog.model.row_at(r).method == "exact-match")
        dialog.table.selectRow(row)
        r = dialog.model.row_at(row)
        assert r.span == POEM[r.offset : r.offset + r.length].decode()
        # The span's whole line from the file, numbered (the span itself highlighted).
        line_text = POEM.split(b"\n")[r.line - 1].decode()
        assert r.before + r.span + r.after == line_text
        assert dialog.span.toPlainText().replace("\xa0", " ") == f"{r.line} │ {line_text}"
        assert f"line {r.line}" in dialog.detail_title.text()
        assert r.line == POEM[: r.offset].count(b"\n") + 1
        assert r.span in dialog.excerpt.text()  # the model output the operator quoted
        dialog.set_filter("operator-asserted")
        assert dialog.model.rowCount() == 5
        assert "operator asserts" in dialog.span.toPlainText()
        dialog.set_filter("")
        assert dialog.model.rowCount() == 15

        # The shortcut on the catalogue page opens (raises) the same window.
        dialog.hide()
        win.catalogue.table.setFocus()
        win.evidence_actions.action.trigger()
        qtbot.waitUntil(dialog.isVisible, timeout=15_000)
        assert win.evidence_actions.action.shortcut().toString() == "Ctrl+Shift+E"
        assert win.evidence_actions.action in win.catalogue.table.actions()  # context menu
        dialog.close()
    finally:
        desk.ctx.close()
        registry.kill(signal.SIGTERM)


def test_a_changed_local_file_shows_your_copy_changed(
    qtbot: Any, theme: Any, tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    from app.ui.dialogs.evidence_dialog import COL_STATUS

    registry, desk, item = _synced_desk(tmp_path, data_dir)
    try:
        desk.file("poems", "dover.txt").write_bytes(POEM.upper())
        _win, dialog = _open(qtbot, theme, desk, item)
        statuses = _texts(dialog, COL_STATUS)
        assert statuses.count("Your copy changed since submission") == 5
        assert statuses.count("Verified against your files") == 5  # scores.csv is unchanged
        # Put back as submitted: "Check again" finds it verified again.
        desk.file("poems", "dover.txt").write_bytes(POEM)
        dialog.recheck_button.click()
        qtbot.waitUntil(
            lambda: _texts(dialog, COL_STATUS).count("Verified against your files") == 10,
            timeout=15_000,
        )
        desk.file("poems", "dover.txt").write_bytes(POEM.upper())
        dialog.recheck_button.click()
        qtbot.waitUntil(
            lambda: _texts(dialog, COL_STATUS).count("Your copy changed since submission") == 5,
            timeout=15_000,
        )
        chip = dialog.findChild(type(dialog.title), "count-changed")
        assert chip is not None and "your copy changed since submission" in chip.text()
        dialog.set_filter("changed")
        assert dialog.model.rowCount() == 5
        assert "your copy changed since submission" in dialog.detail_title.text()
        assert "dover.txt, bytes " in dialog.detail_title.text()  # the file, though changed
        assert "changed since you submitted it" in dialog.span.toPlainText()
        dialog.close()
    finally:
        desk.ctx.close()
        registry.kill(signal.SIGTERM)


def test_false_claims_raise_the_red_banner_and_the_filter_counts(qtbot: Any, theme: Any) -> None:
    """The view of a listing with a span mismatch (the registry's evidence false for an
    unchanged file): a red banner naming it, counts and filter entries per status."""
    from datetime import UTC, datetime

    from app.services.evidence_check import Status
    from app.services.evidence_review import EvidenceListing, EvidenceRow
    from app.ui.dialogs.evidence_dialog import EvidenceDialog

    def row(seq: int, status: Status) -> EvidenceRow:
        return EvidenceRow(
            entry="1", sequence=seq, event_id=f"e{seq}", model_id="m", model_name="Model",
            at=datetime(2026, 12, 1, tzinfo=UTC), method="exact-match", amount_micro=10,
            status=status, file_sha256="a" * 64, offset=0, length=4, local_path="/d/f.txt",
            line=1, span="abcd", span_truncated=False, excerpt=None, before="", after="ef",
        )  # fmt: skip

    rows = [row(1, Status.VERIFIED), row(2, Status.SPAN_MISMATCH), row(3, Status.VERIFIED)]
    listing = EvidenceListing(
        1, "c1", "Poems", "registry", rows=rows,
        counts={Status.VERIFIED: 2, Status.SPAN_MISMATCH: 1}, entries_left=2,
    )  # fmt: skip
    dialog = EvidenceDialog(theme)
    qtbot.addWidget(dialog)
    dialog.show_listing(listing)
    dialog.show()
    assert dialog.banner.isVisible()
    assert dialog.banner.text().startswith("1 event carries evidence that is false")
    assert dialog.pending.isVisible() and "2 ledger entries not read" in dialog.pending.text()
    entries = [dialog.filter.itemText(i) for i in range(dialog.filter.count())]
    assert entries == [
        "All events (3)",
        "Verified against your files (2)",
        "Span mismatch (false claim) (1)",
    ]
    dialog.set_filter("span-mismatch")
    assert dialog.model.rowCount() == 1 and dialog.model.row_at(0).event_id == "e2"
    assert dialog.span.toPlainText().replace("\xa0", " ") == "1 │ abcdef"
    dialog.show_listing(listing)  # shown again (a re-check): the filter stays
    assert dialog.filter.currentData() == "span-mismatch" and dialog.model.rowCount() == 1
    listing.rows, listing.counts = rows[:1], {Status.VERIFIED: 1}
    dialog.show_listing(listing)  # that status is gone: every event is shown
    assert not dialog.banner.isVisible()
    assert dialog.filter.currentData() == "" and dialog.model.rowCount() == 1
