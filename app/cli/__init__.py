"""Command-line interface: the same services as the GUI."""
