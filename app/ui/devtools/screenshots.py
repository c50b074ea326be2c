"""Regenerate docs/screenshots: every main screen, light and dark, offscreen, at 1600x1000
(NAME-THEME.png) and at 1024x700 (NAME-THEME-1024x700.png).

    python -m app.ui.devtools.screenshots --out docs/screenshots [--sizes 1600x1000,1024x700]

Builds a realistic catalogue in a throwaway data folder (test fixtures when run from a
checkout, generated datasets otherwise) with a process-local keyring; never the user's data.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.domain.states import State

WIDTH, HEIGHT = 1600, 1000
DECIDED = (State.ACCEPTED, State.REJECTED)  # what the registry answers a submission
SIZES = "1600x1000,1024x700"  # the first size's files have no size suffix
FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "formats"


def _settle(app: Any, ms: int = 150) -> None:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _delete_closed(app: Any) -> None:
    """Really delete the windows closed with deleteLater (processEvents alone does not), so
    the next theme's stylesheet never re-polishes a half-deleted widget (a crash)."""
    from PySide6.QtCore import QEvent

    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()


def _wait(app: Any, done: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def build_catalogue(ctx: Any, src: Path) -> dict[str, int]:
    """A plausible contributor's catalogue: tables, images with labels, text, HF datasets."""
    from app.domain.states import Kind
    from app.services.catalogue import CatalogueService, ImportRequest
    from app.ui.devtools.sample_data import write_air_quality, write_reviews

    cat = CatalogueService(ctx)
    ids: dict[str, int] = {}

    def copy(name: str, dest: str) -> Path | None:
        origin = FIXTURES / name
        if not origin.exists():
            return None
        target = src / dest
        shutil.copytree(origin, target)
        return target

    def add(key: str, path: Path | None, title: str, **kw: Any) -> None:
        if path is not None:
            ids[key] = cat.add(ImportRequest(paths=[path], title=title, **kw)).id

    add(
        "air",
        write_air_quality(src / "air-quality-2026"),
        "City air quality 2026",
        license="CC-BY-4.0",
    )
    add("coco", copy("coco", "pets-detection"), "Pets detection (COCO)", license="CC-BY-4.0")
    add("voc", copy("voc", "street-objects"), "Street objects (Pascal VOC)", license="CC0-1.0")
    add(
        "yolo",
        copy("yolo_ultralytics", "warehouse-boxes"),
        "Warehouse boxes (YOLO)",
        license="CDLA-Permissive-2.0",
    )
    add("diabetes", copy("csv", "diabetes-progression"), "Diabetes progression", license="MIT")
    if "diabetes" in ids:
        add(
            "labels",
            copy("label_studio", "diabetes-review-labels"),
            "Clinician review labels",
            kind=Kind.ANNOTATION,
            parent_id=ids["diabetes"],
            license="MIT",
        )
    add(
        "reviews",
        write_reviews(src / "cafe-reviews"),
        "Café reviews with sentiment",
        license="ODbL-1.0",
    )
    add(
        "hf",
        copy("hf_save_to_disk", "hf-news-headlines"),
        "News headlines (HF datasets)",
        license="Apache-2.0",
    )
    add(
        "parquet",
        copy("parquet", "diabetes-parquet"),
        "Diabetes (Parquet export)",
        license="CC0-1.0",
    )
    return ids


def shoot(
    out: Path,
    theme_name: str,
    services: Any,
    ids: dict[str, int],
    src: Path,
    demo_url: str | None,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    suffix: str = "",
) -> list[Path]:
    from PySide6.QtWidgets import QApplication

    from app.ui.main_window import MainWindow
    from app.ui.theme import apply_theme

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    theme = apply_theme(app, theme_name)
    saved: list[Path] = []

    def save(widget: Any, name: str) -> None:
        _settle(app)
        path = out / f"{name}-{theme_name}{suffix}.png"
        widget.grab().save(str(path))
        saved.append(path)

    window = MainWindow(services, theme, check_registry_on_start=False)
    window.resize(*size)
    window.show_page("catalogue")
    window.show()
    if demo_url:  # a real embedded registry, so the status bar tells the truth
        window.set_demo(demo_url)
        _wait(app, lambda: window.registry_state != "unknown", timeout=10)
    _settle(app, 300)
    window.catalogue.select_item(ids.get("coco", next(iter(ids.values()))))
    _wait(app, lambda: window.catalogue.detail.detail is not None)
    save(window, "catalogue")

    window.catalogue.select_item(ids.get("air", next(iter(ids.values()))))
    _wait(
        app,
        lambda: (
            window.catalogue.detail.detail is not None
            and window.catalogue.detail.detail.summary.id == ids.get("air")
        ),
    )
    window.catalogue.detail.tabs.setCurrentIndex(2)
    save(window, "catalogue-format")
    window.catalogue.detail.tabs.setCurrentIndex(0)

    window.overlay.show_for(1, 1)
    save(window, "drop")
    window.overlay.hide()

    new_data = src / f"new-{theme_name}{suffix}" / "bird-songs"
    from app.ui.devtools.sample_data import write_air_quality

    write_air_quality(new_data, rows=1200)
    dialog = window.open_import([new_data])
    _wait(app, lambda: dialog.preview is not None)
    line = dialog.license_combo.lineEdit()
    if line is not None:
        line.setText("CC-BY-4.0 — Creative Commons Attribution 4.0")
    dialog.adjustSize()
    save(dialog, "import")
    dialog.reject()
    saved.extend(shoot_key_dialogs(out, f"{theme_name}{suffix}", window, services, ids))

    window.show_page("uploads")
    save(window, "uploads")
    window.show_page("rewards")
    _wait(
        app,
        lambda: (
            window._rewards is not None
            and window._rewards.overview is not None
            and window._rewards.overview.last_sync is not None
            and not window.rewards_sync.syncing
        ),
        timeout=60,
    )
    _settle(app, 400)  # the page lays its charts out once filled
    save(window, "rewards")
    rewards = window._rewards
    assert rewards is not None
    rewards.breakdown.setCurrentIndex(1)  # usage by attribution method, per week
    rewards.bucket.setCurrentIndex(1)
    box = rewards.usage_chart.parentWidget()
    assert box is not None
    rewards.scroll.verticalScrollBar().setValue(box.y() - 4)
    save(window, "rewards-usage")
    rewards.breakdown.setCurrentIndex(0)
    rewards.bucket.setCurrentIndex(0)
    rewards.scroll.verticalScrollBar().setValue(0)
    real = rewards.log_status
    if real is not None:  # the banner of a failed verification (staged: the demo is honest)
        rewards.show_log(
            dataclasses.replace(
                real,
                failure="ledger entry 412: the registry reports amountMicro = 1250, its log "
                "says 250 (entry, 06 Dec 2026 12:30 UTC)",
                failure_what="entry",
            )
        )
        save(window, "rewards-failed")
        rewards.show_log(real)
    window.show_page("catalogue")  # an accepted contribution's timeline (History tab)
    accepted = ids.get("coco", next(iter(ids.values())))
    window.catalogue.select_item(accepted)
    pane = window.catalogue.detail
    _wait(app, lambda: pane.detail is not None and pane.detail.summary.id == accepted)
    pane.tabs.setCurrentIndex(pane.tabs.count() - 1)
    _wait(app, lambda: pane.timeline.topLevelItemCount() > 0, timeout=15)
    save(window, "history")
    pane.tabs.setCurrentIndex(0)
    # The Evidence view of a contribution the demo's usage quoted (spans of its real bytes).
    opened: list[Any] = []
    window.evidence_actions.opened.connect(opened.append)
    window.evidence_actions.open(ids.get("air", accepted))
    _wait(app, lambda: bool(opened), timeout=30)
    evidence = opened[0]
    evidence.resize(*size)
    rows = [evidence.model.row_at(i) for i in range(evidence.model.rowCount())]
    order = sorted(
        (r.method != "exact-match", i)
        for i, r in enumerate(rows)
        if r is not None and r.line is not None
    )
    quoted = [i for _other, i in order]
    evidence.table.selectRow(quoted[0] if quoted else 0)  # a span shown from the local file
    save(evidence, "evidence")
    evidence.close()
    window.show_page("settings")
    window.settings_view.refresh_identity()
    _wait(app, lambda: window.settings_view.identity_info is not None)
    save(window, "settings")

    window.close()
    window.deleteLater()
    _settle(app, 200)
    _delete_closed(app)
    fresh = services.ctx.data_dir.parent / f"fresh-{theme_name}{suffix}"
    saved.extend(shoot_first_run(out, theme_name, fresh, size, suffix))
    return saved


def shoot_first_run(
    out: Path,
    theme_name: str,
    data_dir: Path,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    suffix: str = "",
) -> list[Path]:
    """The wizard as a new user sees it: a fresh data folder without an identity."""
    from PySide6.QtWidgets import QApplication

    from app.services.context import ServiceContext
    from app.ui.adapters.services import Services
    from app.ui.main_window import MainWindow
    from app.ui.theme import resolve_theme

    app = QApplication.instance()
    ctx = ServiceContext(data_dir, registry_url="https://registry.example.org")
    try:
        window = MainWindow(Services(ctx), resolve_theme(theme_name), check_registry_on_start=False)
        window.resize(*size)
        window.show()
        wizard = window.show_first_run()
        wizard.next()
        _settle(app, 400)
        path = out / f"first-run-{theme_name}{suffix}.png"
        wizard.grab().save(str(path))
        page = wizard.identity_page
        page.run()  # the new key, and the offer to back it up
        _wait(app, page.isComplete)
        _settle(app, 300)
        done = out / f"first-run-backup-{theme_name}{suffix}.png"
        wizard.grab().save(str(done))
        wizard.reject()
        window.close()
        window.deleteLater()
        _settle(app, 200)
        _delete_closed(app)
        return [path, done]
    finally:
        ctx.close()


def shoot_key_dialogs(
    out: Path, tag: str, window: Any, services: Any, ids: dict[str, int]
) -> list[Path]:
    """The review sheet and the unlock dialog, each over the dimmed window it belongs to."""
    from PySide6.QtGui import QColor, QPainter
    from PySide6.QtWidgets import QApplication

    from app.services.item_review import review_item
    from app.ui.dialogs.key_unlock import UnlockDialog
    from app.ui.dialogs.review_sheet import ReviewSheet

    app = QApplication.instance()
    saved: list[Path] = []

    def over_window(dialog: Any, name: str) -> None:
        dialog.show()
        _settle(app)
        shot = window.grab()
        painter = QPainter(shot)
        painter.fillRect(shot.rect(), QColor(0, 0, 0, 90))
        front = dialog.grab()
        painter.drawPixmap(
            (shot.width() - front.width()) // 2, (shot.height() - front.height()) // 3, front
        )
        painter.end()
        path = out / f"{name}-{tag}.png"
        shot.save(str(path))
        saved.append(path)
        dialog.reject()

    item = ids.get("voc", next(iter(ids.values())))  # a draft: what Submit would review
    review = review_item(services.ctx, item)
    over_window(ReviewSheet(review, window.theme, submit=True, parent=window), "review")
    unlock = UnlockDialog(
        f"sign and submit “{review.title}”",
        window.theme,
        key_file=str(services.ctx.data_dir / "identity.key"),
        parent=window,
    )
    unlock.show_problem("That passphrase does not open your key file. Try again.")
    over_window(unlock, "unlock")
    return saved


def submit_and_wait(app: Any, services: Any, item_ids: list[int]) -> None:
    """Real submissions to the embedded registry, so the Uploads page has real rows."""
    for item_id in item_ids:
        services.uploads.submit(item_id)
    _wait(
        app,
        lambda: all(str(services.catalogue.get(i).summary.state) in DECIDED for i in item_ids),
        timeout=60,
    )


def _backdate_acceptance(demo: Any, days: int, accepted: int, timeout: float = 300.0) -> None:
    """The Rewards page as a contributor with weeks of history sees it: once `accepted`
    contributions are accepted (uploads can be slow on a busy machine), they count as accepted
    `days` ago (simulated usage starts at acceptance)."""
    import sqlite3
    from contextlib import closing
    from datetime import UTC, datetime, timedelta

    from PySide6.QtWidgets import QApplication

    path = demo.db_url.removeprefix("sqlite:///")

    def all_accepted() -> bool:
        with closing(sqlite3.connect(path)) as db:
            done = db.execute("SELECT count(*) FROM contributions WHERE state = 'accepted'")
            return bool(done.fetchone()[0] >= accepted)

    _wait(QApplication.instance(), all_accepted, timeout)
    when = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE contributions SET updated_at = ? WHERE state = 'accepted'", (when,))


def _start_demo(data_dir: Path) -> Any:
    try:
        from app.services.demo import start_demo_registry

        return start_demo_registry(data_dir)
    except Exception as exc:  # screenshots still work; the status bar then says offline
        print(f"demo registry not started: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--themes", default="light,dark")
    parser.add_argument("--sizes", default=SIZES, help="WIDTHxHEIGHT,… (default: %(default)s)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import keyring

    from app.services.context import ServiceContext
    from app.ui.adapters.services import Services
    from app.ui.adapters.session import ensure_app
    from app.ui.devtools.self_test import SelfTestKeyring

    keyring.set_keyring(SelfTestKeyring())
    args.out.mkdir(parents=True, exist_ok=True)
    app = ensure_app()
    with tempfile.TemporaryDirectory(prefix="contributor-desk-shots-") as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        demo = _start_demo(root / "registry")
        url = demo.url if demo is not None else "http://127.0.0.1:9"
        ctx = ServiceContext(root / "data", registry_url=url)
        saved: list[Path] = []
        try:
            ids = build_catalogue(ctx, root / "src")
            services = Services(ctx)
            services.identity.init()
            services.signing.sign_item(ids["diabetes"], registry_url=url, datanet="open-data")
            if demo is not None:
                submit_and_wait(app, services, [ids["coco"], ids["air"]])
                _backdate_acceptance(demo, days=45, accepted=2)
                services.demo_seed = demo.seed  # simulated (demo) usage for the Rewards page
            sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
            for i, (w, h) in enumerate(sizes):
                suffix = "" if i == 0 else f"-{w}x{h}"
                for name in args.themes.split(","):
                    saved += shoot(
                        args.out,
                        name.strip(),
                        services,
                        ids,
                        root / "src",
                        demo and demo.url,
                        (w, h),
                        suffix,
                    )
        finally:
            uploads = services.started_uploads() if "services" in locals() else None
            if uploads is not None:
                uploads.stop()
            ctx.close()
            if demo is not None:
                demo.stop()
    for path in saved:
        print(path)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
