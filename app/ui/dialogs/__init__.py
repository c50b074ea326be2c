"""Dialogs and wizards (modal or sheet-like windows)."""
