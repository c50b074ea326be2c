"""What goes into the bundle: the keep/drop rules used by contributor-desk.spec.

The app loads QtCore/QtGui/QtWidgets/QtSvg, reads Parquet footers and Arrow IPC streams in
pure Python (app/formats/parquet_footer.py, arrow_ipc.py; pyarrow is a test dependency only),
and starts its demo registry (FastAPI on uvicorn with asyncio + h11, SQLite). Every rule below
removes something none of these paths loads; tests/packaging/test_bundle_filter.py checks the
rules, tests/packaging/test_bundle.py checks that the frozen app still works.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# Python modules that installed packages pull in but the app never imports. The registry's
# PostgreSQL driver and uvicorn's optional speedups are for the server deployment only.
EXCLUDED_MODULES = [
    "tests", "tkinter", "_tkinter", "IPython", "matplotlib", "pytest", "hypothesis",
    "schemathesis", "pandas", "scipy", "aiohttp", "OpenGL",
    # the charts are drawn with QPainter: pyqtgraph and numpy (with OpenBLAS) stay out
    "pyqtgraph", "numpy", "mypy", "ast_serialize", "setuptools",
    "pkg_resources", "psycopg", "psycopg_binary", "psycopg_pool", "uvloop", "httptools",
    "websockets", "watchfiles", "dotenv", "werkzeug", "tqdm", "readline", "curses",
    "PySide6.QtNetwork", "PySide6.QtOpenGL", "PySide6.QtOpenGLWidgets", "PySide6.QtTest",
    "PySide6.QtDBus", "PySide6.QtQml", "PySide6.QtQuick",
    # pyarrow (and its libarrow/libparquet) only checks the app's own readers in the tests
    "pyarrow",
    "PIL._avif", "PIL.AvifImagePlugin", "PIL.ImageQt", "PIL.ImageTk", "PIL._imagingtk",
    "PIL._imagingft", "PIL.ImageFont", "fsspec", "pydoc_data", "distutils", "lib2to3",
    "sqlalchemy.dialects.mysql", "sqlalchemy.dialects.mssql", "sqlalchemy.dialects.oracle",
]  # fmt: skip

# pyarrow's shared libraries, in case another package drags pyarrow in: the app never loads them.
_ARROW_LIBS = re.compile(r"^(lib)?(arrow|parquet|gandiva)[_.\-]", re.IGNORECASE)
# Qt plugins by folder: the platforms and formats the desktop app uses. Without a Wayland
# plugin Qt runs through XWayland on a Wayland desktop.
_QT_PLUGINS = {
    "platforms": {"qxcb", "qoffscreen", "qwindows", "qcocoa", "qminimal"},
    "imageformats": {"qsvg", "qico", "qjpeg", "qgif", "qicns"},
    "iconengines": {"qsvgicon"},
    "platforminputcontexts": {
        "composeplatforminputcontextplugin",
        "ibusplatforminputcontextplugin",
    },
    "platformthemes": {"qxdgdesktopportal"},  # qgtk3 alone drags GTK 3 into the bundle
    "xcbglintegrations": {"qxcb-glx-integration", "qxcb-egl-integration"},
    "styles": {"qmodernwindowsstyle", "qwindowsvistastyle", "qmacstyle"},
}
_QT_LIBS_DROPPED = re.compile(
    r"Qt6?(Wayland|EglFS|WlShell|Network|OpenGL|Test|Qml|Quick|VirtualKeyboard|Pdf|Designer)",
    re.IGNORECASE,
)
# System libraries the bundle keeps on Linux: the Python runtime's own dependencies, which a
# pyenv/python.org interpreter links and a desktop may not have in that version. Everything
# else from /usr/lib and /lib (X11, xcb, GL, fontconfig, freetype, glib, dbus, libstdc++ ...)
# comes from the system: the .deb depends on it, and carrying an older libstdc++ than the
# system's GL driver needs is a known way to crash on start.
_SYSTEM_KEPT = re.compile(r"^lib(python3|ffi|sqlite3|ssl|crypto|bz2|lzma|mpdec)\b")
_SYSTEM_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/")


def _plugin_name(name: str) -> str:
    stem = name.split(".")[0]
    return stem[3:] if stem.startswith("lib") else stem


def keep(dest: str, src: str | None, platform: str) -> bool:
    """True when the file at `dest` (relative to the bundle) from `src` belongs in the bundle."""
    path = PurePosixPath(dest.replace("\\", "/"))
    parts = path.parts
    name = path.name
    if parts[:1] in (("pyarrow",), ("pyarrow.libs",), ("numpy",), ("numpy.libs",)) or (
        len(parts) == 1 and _ARROW_LIBS.match(name)
    ):
        return False
    if "PySide6" in parts or "Qt" in parts or name.startswith(("libQt6", "Qt6")):
        if "translations" in parts or "qml" in parts or "metatypes" in parts:
            return False
        if "plugins" in parts:
            folder = (
                parts[parts.index("plugins") + 1] if len(parts) > parts.index("plugins") + 2 else ""
            )
            if folder not in _QT_PLUGINS:
                return False
            return _plugin_name(name) in _QT_PLUGINS[folder]
        if _QT_LIBS_DROPPED.search(name):
            return False
    if platform.startswith("linux") and src and src.startswith(_SYSTEM_DIRS):
        return bool(_SYSTEM_KEPT.match(PurePosixPath(src).name))
    return True


def keep_uvicorn_module(name: str) -> bool:
    """uvicorn's loops and protocols that work without uvloop, httptools and websockets."""
    dropped = ("uvloop", "httptools", "websockets", "wsproto", "watchfiles")
    return not any(part in name for part in dropped)


def licenses_document() -> str:
    """JSON list of {name, version, license} for Help ▸ About, from installed metadata."""
    from app.services.components import components_document

    return components_document()
