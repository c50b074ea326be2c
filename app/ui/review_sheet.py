"""Before signing: the review sheet (what the signature will say, and whether the datanet's
rules accept it), and the dialog that edits a draft's title and license.

Why a sheet: a signature binds the title, license and datanet to the files; a missing
license or a broken rule found after submitting costs a rejection and a new signature.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import QStringListModel, Qt
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
    """Shows a SubmitReview; accepting it means "sign (and submit) this"."""

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
        self.datanet_value = _value(review.datanet)
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
            ("Datanet", self.datanet_value),
            ("Registry", self.registry_value),
            ("Contents", self.contents_value),
        ):
            label = QLabel(name)
            label.setObjectName("muted")
            field.setAccessibleName(name)
            form.addRow(label, field)
        layout.addWidget(card)

        rules_title = QLabel("Rule check")
        rules_title.setObjectName("sectionTitle")
        layout.addWidget(rules_title)
        self.rules = QLabel()
        self.rules.setAccessibleName("Rule check")
        self.rules.setWordWrap(True)
        self.rules.setTextFormat(Qt.TextFormat.RichText)
        self.rules.setText(self._rules_html(theme))
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
        self.go_button.setEnabled(review.ready)
        self.go_button.setDefault(review.ready)
        if not review.ready:
            self.go_button.setToolTip("Fix the problems above first")
        buttons.addButton(self.go_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.edit_button.clicked.connect(self._edit)
        layout.addWidget(buttons)
        self.adjustSize()

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
