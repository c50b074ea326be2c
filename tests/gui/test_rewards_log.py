"""The Rewards page says whether what it shows is verified against the registry's
transparency log: verified up to a checkpoint, pending, or failed (a red banner naming it)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from app.services.transparency import LogStatus
from app.ui.adapters.rewards_adapter import RewardsPageData
from tests.gui.test_rewards import _overview


def _page(log: LogStatus | None) -> RewardsPageData:
    base = _overview()
    return RewardsPageData(**{f.name: getattr(base, f.name) for f in fields(base)}, log=log)


def _status(**kw: Any) -> LogStatus:
    base: dict[str, Any] = {
        "checkpoint_size": 1234,
        "checkpoint_at": None,
        "verified": 3,
        "pending": 0,
        "failure": None,
        "failed_contributions": frozenset(),
        "per_contribution": {"c1": (3, 0)},
    }
    base.update(kw)
    return LogStatus(**base)


def test_verified_pending_and_failed(qtbot: Any, theme: Any) -> None:
    from app.ui.pages.rewards_view import RewardsView

    view = RewardsView(theme)
    qtbot.addWidget(view)
    view.show()
    view.show_overview(_page(_status()))
    assert not view.log_banner.isVisible()
    assert view.by_contribution.item(0, 2).text().endswith("✓")
    assert "verified up to checkpoint 1,234" in view.by_contribution.item(0, 2).toolTip()
    assert "verified" in view.total_note.text()
    assert "Verified up to checkpoint 1,234" in view.total_note.toolTip()

    view.show_overview(_page(_status(pending=2, per_contribution={"c1": (1, 2)})))
    assert view.by_contribution.item(0, 2).text().endswith("…")
    assert "pending" in view.total_note.text()

    failure = "ledger entry 7: the registry reports amountMicro = 9, its log says 8 (entry)"
    view.show_overview(_page(_status(failure=failure, failed_contributions=frozenset({"c1"}))))
    assert view.log_banner.isVisible()
    assert "failed verification" in view.log_banner.text() and failure in view.log_banner.text()
    assert view.by_contribution.item(0, 2).text().endswith("✗")
    assert "FAILED" in view.total_note.text()

    view.show_overview(_page(None))  # a registry without a log: nothing claimed verified
    assert not view.log_banner.isVisible()
    assert "✓" not in view.by_contribution.item(0, 2).text()


def test_the_failure_banner_saves_the_evidence_and_acknowledges_after_asking(
    qtbot: Any, theme: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from app.ui.pages.rewards_view import RewardsView

    view = RewardsView(theme)
    qtbot.addWidget(view)
    view.show()
    view.show_overview(_page(_status(failure="ledger entry 7: wrong amount (entry)")))
    assert view.log_banner.isVisible() and view.acknowledge_button.isVisible()
    target = str(tmp_path / "evidence.json")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (target, "JSON"))
    with qtbot.waitSignal(view.evidenceRequested) as saved:
        view.save_evidence_button.click()
    assert saved.args == [target]

    asked: list[str] = []

    def answer(reply: QMessageBox.StandardButton) -> Any:
        def question(_parent: Any, title: str, text: str, *_a: Any) -> Any:
            asked.append(text)
            return reply

        return question

    acknowledged: list[bool] = []
    view.acknowledgeRequested.connect(lambda: acknowledged.append(True))
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    view.acknowledge_button.click()
    assert acknowledged == [] and "stays stored with its evidence" in asked[0]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    view.acknowledge_button.click()
    assert acknowledged == [True]

    view.show_overview(_page(_status()))  # the page again, nothing failed any more
    assert not view.log_banner.isVisible() and not view.acknowledge_button.isVisible()


def test_settings_show_the_pinned_log_key_with_its_fingerprint(qtbot: Any, window: Any) -> None:
    from app.services.transparency import key_fingerprint, pin_key
    from app.tlog import Signer

    window.show_page("settings")
    view = window.settings_view
    assert "None yet" in view.log_key_label.text()
    signer = Signer.generate("registry.example/log")
    pin_key(window.services.ctx, signer.verifier.vkey, source="first-contact")
    window.show_page("rewards")
    window.show_page("settings")  # shown again: a sync may have pinned a key meanwhile
    text = view.log_key_label.text()
    assert "registry.example/log" in text and key_fingerprint(signer.verifier) in text
    assert "pinned at first contact" in text
    assert view.log_key_label.toolTip() == signer.verifier.vkey
