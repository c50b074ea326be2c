"""Use cases shared by the GUI and the CLI: import, sign, submit, upload, sync, history."""
