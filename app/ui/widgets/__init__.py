"""Widgets shared by pages: the detail pane, charts, the drop overlay, small common parts."""
