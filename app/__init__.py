"""Contributor Desk: catalogue, sign and upload AI training data; see where it is used."""

__version__ = "0.1.0"
APP_NAME = "Contributor Desk"
APP_ID = "contributor-desk"
