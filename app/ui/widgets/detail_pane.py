"""The detail pane of one catalogue item: what it is, what is in it, what happened to it.

It only renders an ItemDetail it is given and emits intents (verify, export, reveal, submit);
the catalogue view does the work in the background.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import Qt, Signal, SignalInstance
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QTextBrowser,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.money import format_micro
from app.domain.problems import Severity
from app.domain.units import plural, problem_location
from app.ui.adapters.catalogue_model import KIND_LABELS
from app.ui.resources import themed_icon
from app.ui.text import human_count, human_size, local_timestamp
from app.ui.theme import Theme
from app.ui.widgets.flow_layout import FlowLayout

if TYPE_CHECKING:
    from app.services.catalogue import ItemDetail
    from app.services.usage_history import ContributionTimeline

FILES_LIMIT_NOTE = 1000


def _value_label(text: str = "", mono: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(
        Qt.TextInteractionFlag.TextSelectableByMouse
        | Qt.TextInteractionFlag.TextSelectableByKeyboard
    )
    if mono:
        label.setStyleSheet("font-family: monospace;")
    return label


EVIDENCE_TIP = (
    "The events behind this contribution's rewards, their evidence checked against your "
    "files (Ctrl+Shift+E)"
)


class DetailPane(QFrame):
    verifyRequested = Signal(int)
    signRequested = Signal(int)
    exportRequested = Signal(int, str)  # item id, "croissant" | "bagit"
    revealRequested = Signal(int)
    submitRequested = Signal(int)
    editRequested = Signal(int)
    evidenceRequested = Signal(int)

    def __init__(self, theme: Theme, *, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailPane")
        self.setAccessibleName("Item details")
        self.theme = theme
        self.detail: ItemDetail | None = None
        # The last result of an action (sign, verify, submit…) per item: shown in the pane
        # while that item is, and kept across the refresh that follows the action.
        self._results: dict[int, tuple[str, str]] = {}
        self.setMinimumWidth(420)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.stack = QStackedWidget()
        outer.addWidget(self.stack)

        placeholder = QLabel("Select an item to see its files, format report and history.")
        placeholder.setObjectName("emptyText")
        placeholder.setWordWrap(True)
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        placeholder.setContentsMargins(24, 24, 24, 24)
        self.stack.addWidget(placeholder)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(10)
        self.title = QLabel()
        self.title.setObjectName("pageTitle")
        self.title.setStyleSheet("font-size: 14pt;")
        self.title.setWordWrap(True)
        self.subtitle = QLabel()
        self.subtitle.setObjectName("muted")
        self.subtitle.setWordWrap(True)
        actions = self._build_actions()
        head = QHBoxLayout()
        head.setSpacing(12)
        head.addWidget(self.title, 1)
        head.addWidget(self.submit_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(head)
        layout.addWidget(self.subtitle)
        layout.addLayout(actions)
        self.result = QLabel()
        self.result.setObjectName("actionResult")
        self.result.setAccessibleName("Result of the last action")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.hide()
        layout.addWidget(self.result)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Item detail sections")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_overview(), "Overview")
        self.tabs.addTab(self._build_files(), "Files")
        self.tabs.addTab(self._build_report(), "Format")
        self.tabs.addTab(self._build_history(), "History")
        layout.addWidget(self.tabs, 1)
        self.stack.addWidget(body)

    # -- construction ------------------------------------------------------------------
    def _button(self, text: str, icon: str, tip: str) -> QPushButton:
        b = QPushButton(
            themed_icon(icon, self.theme.colors["text"], self.theme.colors["disabled"]), text
        )
        b.setAccessibleName(text)
        b.setToolTip(tip)
        return b

    def _build_actions(self) -> FlowLayout:
        row = FlowLayout(spacing=5)
        self.sign_button = self._button("Sign", "sign", "Sign this contribution with your key")
        self.verify_button = self._button(
            "Verify", "verify", "Re-hash the files and check them against the manifest"
        )
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setIcon(
            themed_icon("export", self.theme.colors["text"], self.theme.colors["disabled"])
        )
        self.export_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_button.setAccessibleName("Export")
        self.export_button.setToolTip(
            "Export the metadata as Croissant or the files as a BagIt bag"
        )
        menu = QMenu(self.export_button)
        self.export_croissant = menu.addAction("Croissant metadata (JSON-LD)…")
        self.export_bagit = menu.addAction("BagIt bag…")
        self.export_button.setMenu(menu)
        self.reveal_button = self._button(
            "Reveal", "reveal", "Open the source folder in your file manager"
        )
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setAccessibleName("Edit details")
        self.edit_button.setToolTip("Change the title or choose a license (before submitting)")
        self.evidence_button = self._button("Evidence…", "rewards", EVIDENCE_TIP)
        self.submit_button = self._button("Submit", "submit", "Upload to the registry")
        self.submit_button.setObjectName("primary")
        for w in (
            self.edit_button,
            self.sign_button,
            self.verify_button,
            self.export_button,
            self.reveal_button,
            self.evidence_button,
        ):
            row.addWidget(w)

        self.sign_button.clicked.connect(lambda: self._emit(self.signRequested))
        self.verify_button.clicked.connect(lambda: self._emit(self.verifyRequested))
        self.reveal_button.clicked.connect(lambda: self._emit(self.revealRequested))
        self.submit_button.clicked.connect(lambda: self._emit(self.submitRequested))
        self.edit_button.clicked.connect(lambda: self._emit(self.editRequested))
        self.evidence_button.clicked.connect(lambda: self._emit(self.evidenceRequested))
        self.export_croissant.triggered.connect(lambda: self._emit_export("croissant"))
        self.export_bagit.triggered.connect(lambda: self._emit_export("bagit"))
        return row

    def _build_overview(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        form.setContentsMargins(12, 12, 12, 12)
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(8)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.f_source = _value_label()
        self.f_description = _value_label()
        self.f_license = _value_label()
        self.f_parent = _value_label()
        self.f_files = _value_label()
        self.f_root = _value_label(mono=True)
        self.f_signature = _value_label()
        self.f_registry = _value_label()
        self.f_problems = _value_label()
        self.f_problems.setTextFormat(Qt.TextFormat.RichText)
        for label, field in (
            ("Description", self.f_description),
            ("Source", self.f_source),
            ("License", self.f_license),
            ("Annotates", self.f_parent),
            ("Contents", self.f_files),
            ("Manifest root", self.f_root),
            ("Signature", self.f_signature),
            ("Registry", self.f_registry),
            ("Problems", self.f_problems),
        ):
            name = QLabel(label)
            name.setObjectName("muted")
            form.addRow(name, field)
            field.setAccessibleName(label)
        return w

    def _build_files(self) -> QWidget:
        w = QWidget()
        layout = QVBoxLayout(w)
        layout.setContentsMargins(0, 8, 0, 0)
        self.files_note = QLabel()
        self.files_note.setObjectName("muted")
        self.files_note.setContentsMargins(12, 0, 12, 0)
        self.files = QTreeWidget()
        self.files.setAccessibleName("Files")
        self.files.setRootIsDecorated(False)
        self.files.setAlternatingRowColors(True)
        self.files.setUniformRowHeights(True)
        self.files.setHeaderLabels(["Path", "Size", "SHA-256"])
        header = self.files.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        layout.addWidget(self.files_note)
        layout.addWidget(self.files)
        return w

    def _build_report(self) -> QWidget:
        self.report = QTextBrowser()
        self.report.setAccessibleName("Format report")
        self.report.setOpenLinks(False)
        return self.report

    def _build_history(self) -> QWidget:
        """The contribution's timeline (milestones, first use per model, monthly totals;
        filled by `show_timeline`) above every recorded event."""
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.setSpacing(4)
        self.timeline = QTreeWidget()
        self.timeline.setAccessibleName("Timeline")
        self.timeline.setRootIsDecorated(False)
        self.timeline.setHeaderLabels(["When", "Milestone", "Detail"])
        self.history = QTreeWidget()
        self.history.setAccessibleName("History")
        self.history.setRootIsDecorated(False)
        self.history.setHeaderLabels(["When", "Event", "State", "Detail"])
        # Long details end in "…" (whole in the tooltip), never a sideways scroll.
        self.timeline.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for tree, fixed in ((self.timeline, 2), (self.history, 3)):
            header = tree.header()
            for i in range(fixed):
                header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
            header.setStretchLastSection(True)
        self.timeline_title = QLabel("Timeline")
        self.timeline_title.setStyleSheet(f"color: {self.theme.colors['muted']};")
        events_title = QLabel("Recorded events")
        events_title.setStyleSheet(f"color: {self.theme.colors['muted']};")
        layout.addWidget(self.timeline_title)
        layout.addWidget(self.timeline, 3)
        layout.addWidget(events_title)
        layout.addWidget(self.history, 2)
        return box

    def show_timeline(self, timeline: ContributionTimeline) -> None:
        """Milestones oldest first, then one row per month of use (from the local copy)."""
        if self.detail is None or self.detail.summary.id != timeline.item_id:
            return  # an answer for an item no longer shown
        self.timeline.clear()
        for m in timeline.milestones:
            when = local_timestamp(m.at) if isinstance(m.at, datetime) else f"{m.at:%Y-%m-%d}"
            row = QTreeWidgetItem([when, m.text, m.detail])
            row.setToolTip(2, m.detail)
            self.timeline.addTopLevelItem(row)
        for month in timeline.months:
            detail = (
                f"{month.events:,} events, {format_micro(month.share_ppm)} effective, "
                f"{format_micro(month.earned_micro, unit=timeline.unit)} earned"
            )
            row = QTreeWidgetItem([month.month, "Month", detail])
            row.setToolTip(2, detail)
            self.timeline.addTopLevelItem(row)
        used = sum(m.events for m in timeline.months)
        self.timeline_title.setText(
            f"Timeline — {used:,} attributed events in all" if used else "Timeline"
        )

    # -- intents -------------------------------------------------------------------------
    def _emit(self, signal: SignalInstance) -> None:
        if self.detail is not None:
            signal.emit(self.detail.summary.id)

    def _emit_export(self, fmt: str) -> None:
        if self.detail is not None:
            self.exportRequested.emit(self.detail.summary.id, fmt)

    # -- rendering -----------------------------------------------------------------------
    def clear(self) -> None:
        self.detail = None
        self.stack.setCurrentIndex(0)

    def show_result(self, item_id: int, text: str, tone: str) -> None:
        """The outcome of an action on `item_id`, where the user is looking ('' clears it)."""
        if text:
            self._results = {item_id: (text, tone)}  # one at a time: the latest action
        else:
            self._results.pop(item_id, None)
        if self.detail is not None and self.detail.summary.id == item_id:
            self._render_result(item_id)

    def show_current_result(self, text: str, tone: str = "muted") -> None:
        """show_result for the item on display (if any)."""
        if self.detail is not None:
            self.show_result(self.detail.summary.id, text, tone)

    def _render_result(self, item_id: int) -> None:
        text, tone = self._results.get(item_id, ("", "muted"))
        self.result.setText(text)
        self.result.setVisible(bool(text))
        c = self.theme.colors
        color = c.get(tone, c["muted"])
        self.result.setStyleSheet(
            f"QLabel#actionResult {{ color: {color}; border: 1px solid {color}; "
            "border-radius: 6px; padding: 6px 10px; }"
        )

    def show_detail(self, detail: ItemDetail) -> None:
        self.detail = detail
        s = detail.summary
        if s.id not in self._results:
            self._results.clear()  # another item: the old result is no longer relevant
        self._render_result(s.id)
        self.stack.setCurrentIndex(1)
        self.title.setText(s.title)
        kind = KIND_LABELS.get(str(s.kind), str(s.kind))
        parts = [kind, s.format, f"{human_count(s.record_count)} items", human_size(s.total_size)]
        self.subtitle.setText(" · ".join(parts) + f" · {str(s.state).capitalize()}")
        self.f_source.setText(str(detail.source_path))
        self.f_description.setText(detail.description or "—")
        editable = str(s.state) in ("draft", "signed", "rejected")
        if s.license:
            self.f_license.setText(s.license)
        elif editable:
            self.f_license.setText("Not set — choose one with Edit… before submitting")
        else:
            self.f_license.setText("None given")
        if s.parent_id is not None:
            self.f_parent.setText(f"Catalogue item #{s.parent_id}")
        elif s.parent_registry_id:
            self.f_parent.setText(f"Registry contribution {s.parent_registry_id}")
        else:
            self.f_parent.setText("—")
        self.f_files.setText(f"{plural(s.file_count, 'file')}, {s.total_size:,} bytes")
        root = s.manifest_root
        self.f_root.setText(f"{root[:32]}\n{root[32:]}" if len(root) > 32 else (root or "—"))
        self.f_root.setToolTip(root)
        if detail.signed_by:
            self.f_signature.setText(f"Signed by key {detail.signed_by[:16]}…")
        else:
            self.f_signature.setText("Not signed yet")
        if detail.registry_id:
            self.f_registry.setText(f"{detail.registry_id} at {detail.registry_url or 'registry'}")
        else:
            self.f_registry.setText("Not submitted")
        self.f_problems.setText(self._problems_html(detail))
        self._fill_files(detail)
        self.report.setHtml(self._report_html(detail))
        self._fill_history(detail)
        self._update_actions(detail)

    def _update_actions(self, detail: ItemDetail) -> None:
        state = str(detail.summary.state)
        self.edit_button.setEnabled(state in ("draft", "signed", "rejected"))
        self.evidence_button.setEnabled(state == "accepted")
        self.evidence_button.setToolTip(
            EVIDENCE_TIP if state == "accepted" else "Available once the registry has accepted it"
        )
        self.sign_button.setEnabled(state in ("draft", "signed", "rejected"))
        can_verify = detail.envelope is not None
        self.verify_button.setEnabled(can_verify)
        self.verify_button.setToolTip(
            "Check the signature and re-hash every file against the signed manifest"
            if can_verify
            else "Sign the item first: verification checks its signature and files"
        )
        self.submit_button.setEnabled(state in ("draft", "signed", "rejected"))
        self.submit_button.setToolTip("Sign if needed, then queue for upload to the registry")

    def _problems_html(self, detail: ItemDetail) -> str:
        problems = [*detail.problems, *detail.report.all_problems()]
        if not problems:
            return f"<span style='color:{self.theme.colors['success']}'>None found</span>"
        errors = sum(p.severity == Severity.ERROR for p in problems)
        warnings = sum(p.severity == Severity.WARNING for p in problems)
        bits = []
        if errors:
            bits.append(
                f"<span style='color:{self.theme.colors['danger']}'>"
                f"{plural(errors, 'error')}</span>"
            )
        if warnings:
            bits.append(
                f"<span style='color:{self.theme.colors['warning']}'>"
                f"{plural(warnings, 'warning')}</span>"
            )
        infos = len(problems) - errors - warnings
        if infos:
            bits.append(plural(infos, "note"))
        return ", ".join(bits) + " — see Format"

    def _fill_files(self, detail: ItemDetail) -> None:
        self.files.clear()
        items = [
            QTreeWidgetItem([f.path, human_size(f.size), f.sha256[:16] + "…"]) for f in detail.files
        ]
        for it in items:
            it.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.files.addTopLevelItems(items)
        total = detail.summary.file_count
        shown = len(detail.files)
        if shown < total:
            self.files_note.setText(f"Showing the first {shown:,} of {total:,} files")
        else:
            self.files_note.setText(f"{total:,} file{'s' if total != 1 else ''}")

    def _fill_history(self, detail: ItemDetail) -> None:
        self.history.clear()
        self.timeline.clear()  # until the item's timeline is loaded (show_timeline)
        self.timeline_title.setText("Timeline")
        for h in sorted(detail.history, key=lambda h: h.at, reverse=True):
            state = f"{h.from_state} → {h.to_state}" if h.from_state else h.to_state
            self.history.addTopLevelItem(
                QTreeWidgetItem([local_timestamp(h.at), h.event, state, h.detail])
            )

    def _report_html(self, detail: ItemDetail) -> str:
        c = self.theme.colors
        esc = html.escape
        out = [f"<div style='color:{c['text']}'>"]
        parts = detail.report.parts
        if not parts:
            out.append("<p>No known format was recognised; the files are catalogued as-is.</p>")
        for part in parts:
            count = "" if part.record_count is None else f" — {part.record_count:,} records"
            where = "" if part.path == "." else f" in <code>{esc(part.path)}</code>"
            out.append(f"<h4 style='margin-bottom:2px'>{esc(part.format)}{where}{count}</h4>")
            if part.schema:
                cols = ", ".join(
                    f"{esc(k)}: <i>{esc(v)}</i>" for k, v in list(part.schema.items())[:30]
                )
                out.append(f"<p style='margin-top:2px'>Columns: {cols}</p>")
            if part.classes:
                names = ", ".join(esc(x) for x in part.classes[:40])
                more = f" (+{len(part.classes) - 40})" if len(part.classes) > 40 else ""
                out.append(f"<p>Classes: {names}{more}</p>")
        problems = [*detail.problems, *detail.report.all_problems()]
        if problems:
            out.append("<h4>Problems</h4><ul>")
            for p in problems[:200]:
                color = {"error": c["danger"], "warning": c["warning"]}.get(
                    str(p.severity), c["muted"]
                )
                where = (
                    f"<code>{esc(cast(str, p.path))}</code>: " if problem_location(p.path) else ""
                )
                out.append(
                    f"<li><span style='color:{color}'>{esc(str(p.severity))}</span> "
                    f"{where}{esc(p.message)}</li>"
                )
            out.append("</ul>")
        if detail.rejection_reasons:
            out.append("<h4>Rejected by the registry</h4><ul>")
            out.extend(f"<li>{esc(str(r))}</li>" for r in detail.rejection_reasons)
            out.append("</ul>")
        out.append("</div>")
        return "".join(out)
