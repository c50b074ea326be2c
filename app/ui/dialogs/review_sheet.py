"""Before signing: the review sheet (what the signature will say, and whether the datanet's
rules accept it), and the dialog that edits a draft's title and license.

Why a sheet: a signature binds the title, license and datanet to the files; a missing
license or a broken rule found after submitting costs a rejection and a new signature.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.licenses import SPDX_LICENSES
from app.ui.text import human_size

if TYPE_CHECKING:
    from app.services.item_review import SubmitReview
    from app.ui.theme import Theme

KIND_NAMES = {"dataset": "Dataset", "annotation": "Annotation set"}


def _value(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ReviewSheet(QDialog):
    """Shows a SubmitReview; accepting it means "sign (and submit) this".

    The datanet is picked here (a searchable list with each datanet's description, owner and
    rules); picking one emits `datanetPicked` and the owner of the sheet answers with a new
    review for it (`set_review`), so the rule check is always that of the shown datanet."""

    datanetPicked = Signal(str)

    def __init__(
        self,
        review: SubmitReview,
        theme: Theme,
        *,
        submit: bool,
        editable: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.review = review
        self.theme = theme
        self.edit_wanted = False
        verb = "Sign and submit" if submit else "Sign"
        self.setWindowTitle(f"Review before signing — {review.title}")
        self.setAccessibleName("Review before signing")
        self.setObjectName("reviewSheet")
        self.setFixedWidth(560)  # wrapped texts then get the height they need
        c = theme.colors
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 16)
        layout.setSpacing(12)
        heading = QLabel("Review before signing")
        heading.setObjectName("sectionTitle")
        intro = QLabel(
            "Your signature binds these details to the exact files. Check them now: after "
            + ("submitting" if submit else "signing")
            + ", a change means signing again."
        )
        intro.setObjectName("muted")
        intro.setWordWrap(True)
        layout.addWidget(heading)
        layout.addWidget(intro)

        card = QFrame()
        card.setObjectName("card")
        form = QFormLayout(card)
        form.setContentsMargins(14, 12, 14, 12)
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(8)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.title_value = _value(review.title)
        self.description_value = _value(review.description or "—")
        self.license_value = _value(review.license or "Not chosen")
        if not review.license:
            self.license_value.setStyleSheet(f"color: {c['danger']}; font-weight: 600;")
        self.datanet_picker = self._make_picker(review)
        self.registry_value = _value(review.registry_url)
        kind = KIND_NAMES.get(review.kind, review.kind)
        files = "file" if review.file_count == 1 else "files"
        self.contents_value = _value(
            f"{kind}, {review.file_count:,} {files}, {human_size(review.total_size)}"
        )
        for name, field in (
            ("Title", self.title_value),
            ("Description", self.description_value),
            ("License", self.license_value),
            ("Datanet", self.datanet_picker),
            ("Registry", self.registry_value),
            ("Contents", self.contents_value),
        ):
            label = QLabel(name)
            label.setObjectName("muted")
            field.setAccessibleName(name)
            form.addRow(label, field)
        layout.addWidget(card)

        self.datanet_card = QFrame()
        self.datanet_card.setObjectName("card")
        about = QFormLayout(self.datanet_card)
        about.setContentsMargins(14, 10, 14, 10)
        about.setHorizontalSpacing(16)
        about.setVerticalSpacing(6)
        about.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        about.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.datanet_value = _value(review.datanet)
        self.datanet_about = _value("")
        self.datanet_owner = _value("")
        self.datanet_rules = _value("")
        for name, field in (
            ("Id", self.datanet_value),
            ("About", self.datanet_about),
            ("Owner", self.datanet_owner),
            ("Rules", self.datanet_rules),
        ):
            label = QLabel(name)
            label.setObjectName("muted")
            field.setAccessibleName(f"Datanet {name.lower()}")
            about.addRow(label, field)
        layout.addWidget(self.datanet_card)

        rules_title = QLabel("Rule check")
        rules_title.setObjectName("sectionTitle")
        layout.addWidget(rules_title)
        self.rules = QLabel()
        self.rules.setAccessibleName("Rule check")
        self.rules.setWordWrap(True)
        self.rules.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.rules)

        buttons = QDialogButtonBox()
        self.edit_button = QPushButton("Edit details…")
        self.edit_button.setAccessibleName("Edit details")
        self.edit_button.setVisible(editable)
        self.edit_button.setToolTip("Change the title or choose a license")
        buttons.addButton(self.edit_button, QDialogButtonBox.ButtonRole.ResetRole)
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.go_button = QPushButton(verb)
        self.go_button.setAccessibleName(verb)
        self.go_button.setObjectName("primary")
        buttons.addButton(self.go_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.edit_button.clicked.connect(self._edit)
        layout.addWidget(buttons)
        self._show_review()
        self.datanet_picker.currentIndexChanged.connect(self._picked)
        self.adjustSize()

    # -- the datanet picker --------------------------------------------------------------
    def _make_picker(self, review: SubmitReview) -> QComboBox:
        picker = QComboBox()
        picker.setEditable(True)
        picker.setAccessibleName("Datanet")
        picker.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        picker.setMinimumContentsLength(24)
        entries = []
        ids = [v.id for v in review.choices]
        if review.datanet not in ids:
            picker.addItem(review.datanet, review.datanet)
            entries.append(review.datanet)
        for view in review.choices:
            text = f"{view.name} — {view.id}" if view.name and view.name != view.id else view.id
            picker.addItem(text, view.id)
            entries.append(text)
        completer = QCompleter(QStringListModel(entries, picker), picker)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        picker.setCompleter(completer)
        line = picker.lineEdit()
        if line is not None:
            line.setPlaceholderText("Search datanets by name or id")
        picker.setCurrentIndex(max(0, picker.findData(review.datanet)))
        picker.setToolTip(review.choices_note or "The datanet this contribution goes to")
        return picker

    def picked_datanet(self) -> str:
        return str(self.datanet_picker.currentData() or self.review.datanet)

    def _picked(self, index: int) -> None:
        net = self.datanet_picker.itemData(index)
        if not net or net == self.review.datanet:
            return
        self.go_button.setEnabled(False)
        self.go_button.setToolTip("Checking the rules of the datanet you picked")
        self._show_about(str(net))
        self.rules.setText(
            f"<p style='color:{self.theme.colors['muted']}; margin:0'>"
            f"Checking the rules of <b>{html.escape(str(net))}</b>…</p>"
        )
        self.datanetPicked.emit(str(net))

    def set_review(self, review: SubmitReview) -> None:
        """The review for a picked datanet (a late answer for an earlier pick is dropped)."""
        if review.item_id != self.review.item_id or review.datanet != self.picked_datanet():
            return
        choices = self.review.choices
        self.review = review if review.choices else _with_choices(review, choices)
        self._show_review()

    def _show_about(self, net: str) -> None:
        view = next((v for v in self.review.choices if v.id == net), None)
        self.datanet_value.setText(net)
        if view is None:
            self.datanet_about.setText("—")
            self.datanet_owner.setText("—")
            self.datanet_rules.setText("Not known here yet")
            return
        self.datanet_about.setText(view.description or view.name or "—")
        self.datanet_owner.setText(
            f"Key {view.owner[:16]}…" if view.owner else "The registry's operator"
        )
        self.datanet_rules.setText(_rules_text(view.rule_lines(), view.rules_version))

    def _show_review(self) -> None:
        review = self.review
        self._show_about(review.datanet)
        if review.datanet_name or review.rule_lines:  # fresher than the list's copy
            self.datanet_about.setText(review.datanet_description or review.datanet_name or "—")
            self.datanet_owner.setText(
                f"Key {review.datanet_owner[:16]}…"
                if review.datanet_owner
                else "The registry's operator"
            )
            self.datanet_rules.setText(_rules_text(review.rule_lines, review.rules_version))
        self.rules.setText(self._rules_html(self.theme))
        self.go_button.setEnabled(review.ready)
        self.go_button.setDefault(review.ready)
        self.go_button.setToolTip("" if review.ready else "Fix the problems above first")
        self._fit_height()

    def _fit_height(self) -> None:
        """Grow or shrink to the wrapped texts at the sheet's fixed width (adjustSize ignores
        height-for-width and squeezed the rows)."""
        layout = self.layout()
        if layout is None or not self.isVisible():
            return
        layout.activate()
        wanted = layout.totalHeightForWidth(self.width())
        if wanted > 0 and wanted != self.height():
            self.resize(self.width(), wanted)

    def _edit(self) -> None:
        self.edit_wanted = True
        self.reject()

    def _rules_html(self, theme: Theme) -> str:
        c = theme.colors
        r = self.review
        esc = html.escape
        parts: list[str] = []
        if r.problems:
            n = len(r.problems)
            parts.append(
                f"<p style='color:{c['danger']}; margin:0'><b>"
                f"{'1 problem' if n == 1 else f'{n} problems'} to fix before signing:</b></p>"
                "<ul style='margin-top:4px; margin-bottom:0'>"
                + "".join(f"<li>{esc(p)}</li>" for p in r.problems)
                + "</ul>"
            )
        elif r.rules_checked:
            parts.append(
                f"<p style='color:{c['success']}; margin:0'>✓ Meets every rule of datanet "
                f"<b>{esc(r.datanet)}</b>.</p>"
            )
        if r.note:
            parts.append(f"<p style='color:{c['muted']}; margin:4px 0 0 0'>{esc(r.note)}</p>")
        return "".join(parts)


def _rules_text(lines: Any, version: int | None) -> str:
    """The rules as one wrapped paragraph (a line each made the sheet taller than a laptop
    screen), with the version they are at."""
    text = " · ".join(lines) or "None"
    return text + (f" (rules version {version})" if version else "")


def _with_choices(review: SubmitReview, choices: tuple[Any, ...]) -> SubmitReview:
    from dataclasses import replace

    return replace(review, choices=choices)


class EditDetailsDialog(QDialog):
    """Title and license of a draft (a signed item returns to draft when they change)."""

    def __init__(
        self,
        title: str,
        license: str,
        *,
        description: str = "",
        signed: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit details")
        self.setAccessibleName("Edit details")
        self.setObjectName("editDetails")
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 16)
        layout.setSpacing(12)
        heading = QLabel("Edit details")
        heading.setObjectName("sectionTitle")
        layout.addWidget(heading)
        form = QFormLayout()
        form.setHorizontalSpacing(14)
        form.setVerticalSpacing(10)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.title_edit = QLineEdit(title)
        self.title_edit.setAccessibleName("Title")
        self.title_edit.setMaxLength(200)
        self.description_edit = QPlainTextEdit(description)
        self.description_edit.setAccessibleName("Description")
        self.description_edit.setPlaceholderText(
            "What is in it, how it was collected, what it is good for"
        )
        self.description_edit.setTabChangesFocus(True)
        self.description_edit.setFixedHeight(96)
        self.license_combo = QComboBox()
        self.license_combo.setEditable(True)
        self.license_combo.setAccessibleName("License")
        self.license_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        # The long license names must not widen the dialog (and squeeze the labels).
        self.license_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.license_combo.setMinimumContentsLength(24)
        self.license_combo.addItem("", "")
        entries = []
        for spdx, name in SPDX_LICENSES:
            self.license_combo.addItem(f"{spdx} — {name}", spdx)
            entries.append(f"{spdx} — {name}")
        completer = QCompleter(QStringListModel(entries, self), self)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.license_combo.setCompleter(completer)
        line = self.license_combo.lineEdit()
        if line is not None:
            line.setPlaceholderText("Search SPDX licenses, e.g. CC-BY-4.0")
        index = self.license_combo.findData(license) if license else 0
        if index >= 0:
            self.license_combo.setCurrentIndex(index)
        else:
            self.license_combo.setEditText(license)
        for name, field in (
            ("Title", self.title_edit),
            ("Description", self.description_edit),
            ("License", self.license_combo),
        ):
            label = QLabel(name)
            label.setMinimumWidth(label.sizeHint().width())
            form.addRow(label, field)
        layout.addLayout(form)
        if signed:
            note = QLabel(
                "This item is signed: a new title or license withdraws the signature "
                "(sign again to submit)."
            )
            note.setObjectName("muted")
            note.setWordWrap(True)
            layout.addWidget(note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setObjectName("primary")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def selected_license(self) -> str:
        text = self.license_combo.currentText().strip()
        return text.split(" — ", 1)[0].strip()

    def title(self) -> str:
        return self.title_edit.text().strip()

    def description(self) -> str:
        return self.description_edit.toPlainText().strip()
