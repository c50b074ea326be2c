"""Light and dark themes on top of Fusion: a QPalette plus one stylesheet template.

Why: Fusion looks the same on every OS; the palette follows the OS colour scheme
(QStyleHints.colorScheme) unless the user picks light or dark in Settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from app.domain.states import State
from app.ui.resources import resources_dir

LIGHT = {
    "bg": "#f5f6f8",
    "surface": "#ffffff",
    "sidebar": "#eceef2",
    "text": "#1d2127",
    "muted": "#5d6673",
    "disabled": "#7d838c",  # 3:1 or more on bg, surface, sidebar and hover; dimmer than muted
    "border": "#dadee4",
    "hover": "#e3e7ee",
    "selection": "#dce6ff",
    "accent": "#3563e9",
    "accent_hover": "#2a52c9",
    "accent_text": "#1d3fa6",
    "alt_row": "#fafbfc",
    "scroll": "#c3c8d0",
    "danger": "#c5221f",
    "on_danger": "#ffffff",  # text on a danger background (a failure banner): 4.5:1 or more
    "warning": "#a15c00",
    "success": "#18794e",
    "overlay": "rgba(245, 246, 248, 225)",
}
DARK = {
    "bg": "#1a1c20",
    "surface": "#222529",
    "sidebar": "#16181b",
    "text": "#e5e7ea",
    "muted": "#99a1ab",
    "disabled": "#838993",  # 3:1 or more on every background, and the Fusion mark drawn from it
    "border": "#33373e",
    "hover": "#2b2f35",
    "selection": "#2a3a66",
    "accent": "#6b8fff",
    "accent_hover": "#86a3ff",
    "accent_text": "#c9d6ff",
    "alt_row": "#25282d",
    "scroll": "#454a52",
    "danger": "#f28b82",
    "on_danger": "#1a1c20",  # the light red of the dark theme takes dark text
    "warning": "#f6c560",
    "success": "#7fd3a0",
    "overlay": "rgba(26, 28, 32, 225)",
}

STATE_COLORS: dict[str, tuple[str, str]] = {  # light, dark
    State.DRAFT: ("#6b7280", "#9aa3ad"),
    State.SIGNED: ("#3563e9", "#86a3ff"),
    State.QUEUED: ("#a15c00", "#f6c560"),
    State.UPLOADING: ("#7c3aed", "#b59bff"),
    State.SUBMITTED: ("#0e7490", "#67d4e8"),
    State.PENDING_REVIEW: ("#a15c00", "#f6c560"),
    State.ACCEPTED: ("#18794e", "#7fd3a0"),
    State.REJECTED: ("#c5221f", "#f28b82"),
}


@dataclass(frozen=True)
class Theme:
    name: str  # "light" | "dark"
    colors: dict[str, str]

    @property
    def dark(self) -> bool:
        return self.name == "dark"

    def color(self, key: str) -> QColor:
        return QColor(self.colors[key])

    def state_color(self, state: str) -> QColor:
        light, dark = STATE_COLORS.get(state, ("#6b7280", "#9aa3ad"))
        return QColor(dark if self.dark else light)


def os_prefers_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def resolve_theme(choice: str) -> Theme:
    """'system' follows the OS colour scheme; unknown values behave like 'system'."""
    if choice == "dark" or (choice not in ("light", "dark") and os_prefers_dark()):
        return Theme("dark", DARK)
    return Theme("light", LIGHT)


def stylesheet(theme: Theme) -> str:
    try:
        template = (resources_dir() / "styles" / "app.qss").read_text("utf-8")
    except OSError:
        return ""
    icons = (resources_dir() / "icons").as_posix()
    return Template(template).safe_substitute(theme.colors, icons=icons, scheme=theme.name)


def palette(theme: Theme) -> QPalette:
    c = theme.colors
    pal = QPalette()
    role = QPalette.ColorRole
    pal.setColor(role.Window, QColor(c["bg"]))
    pal.setColor(role.WindowText, QColor(c["text"]))
    pal.setColor(role.Base, QColor(c["surface"]))
    pal.setColor(role.AlternateBase, QColor(c["alt_row"]))
    pal.setColor(role.Text, QColor(c["text"]))
    pal.setColor(role.PlaceholderText, QColor(c["muted"]))
    pal.setColor(role.Button, QColor(c["surface"]))
    pal.setColor(role.ButtonText, QColor(c["text"]))
    pal.setColor(role.Highlight, QColor(c["accent"]))
    pal.setColor(role.HighlightedText, QColor("#ffffff"))
    pal.setColor(role.ToolTipBase, QColor(c["surface"]))
    pal.setColor(role.ToolTipText, QColor(c["text"]))
    pal.setColor(role.Link, QColor(c["accent"]))
    pal.setColor(role.Mid, QColor(c["border"]))
    pal.setColor(role.Light, QColor(c["surface"]))
    pal.setColor(role.Dark, QColor(c["border"]))
    for r in (role.Text, role.WindowText, role.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, r, QColor(c["disabled"]))
    return pal


def apply_theme(app: QApplication, choice: str) -> Theme:
    theme = resolve_theme(choice)
    app.setStyle("Fusion")
    app.setPalette(palette(theme))
    app.setStyleSheet(stylesheet(theme))
    return theme
