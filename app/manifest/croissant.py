"""Croissant 1.1 (MLCommons) JSON-LD export, so ML tooling can load a contribution directly.

Every file is listed as its own cr:FileObject carrying the sha256 from the manifest, so the
export is as verifiable as the signed manifest; tabular parts also get a RecordSet whose fields
come from the detectors' schemas. contentUrl values are paths relative to the contribution
root: put the JSON-LD file in that root (or pass the root as the base) to load the records.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.durable import atomic_write
from app.formats.base import DetectionReport, FormatReport
from app.manifest.canonical import Manifest, ManifestEntry

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"

# The standard Croissant 1.1 @context (as in MLCommons' 1.1 example datasets).
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataBiases": "cr:dataBiases",
    "dataCollection": "cr:dataCollection",
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "personalSensitiveInformation": "cr:personalSensitiveInformation",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

_ENCODING_BY_EXT = {
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".tab": "text/tab-separated-values",
    ".parquet": "application/x-parquet",
    ".json": "application/json",
    ".jsonl": "application/jsonlines",
    ".ndjson": "application/jsonlines",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".xml": "application/xml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".arrow": "application/vnd.apache.arrow.file",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".gz": "application/gzip",
    ".pdf": "application/pdf",
}

# Tabular formats a Croissant reader can turn into records, with the extensions they own.
_TABULAR = {
    "csv": (".csv",),
    "tsv": (".tsv", ".tab"),
    "parquet": (".parquet",),
}

_DATATYPE_BY_NAME = {
    "bool": "sc:Boolean",
    "boolean": "sc:Boolean",
    "int": "sc:Integer",
    "integer": "sc:Integer",
    "float": "sc:Float",
    "double": "sc:Float",
    "number": "sc:Float",
    "decimal": "sc:Float",
    "str": "sc:Text",
    "string": "sc:Text",
    "text": "sc:Text",
    "utf8": "sc:Text",
    "large_string": "sc:Text",
    "large_utf8": "sc:Text",
    "object": "sc:Text",
    "date": "sc:Date",
    "datetime": "sc:DateTime",
    "timestamp": "sc:DateTime",
    "time": "sc:Time",
    "url": "sc:URL",
    "bytes": "sc:Text",
}


@dataclass(frozen=True, slots=True)
class CroissantMeta:
    """Dataset-level facts the catalogue knows about a contribution."""

    name: str
    description: str
    license: str  # SPDX id (e.g. "CC-BY-4.0") or a URL
    url: str
    creators: tuple[str, ...] = ()
    date_published: dt.date | None = None
    version: str = "1.0.0"  # a signed contribution never changes: its first version
    keywords: tuple[str, ...] = field(default_factory=tuple)
    cite_as: str | None = None  # plain-text or BibTeX citation; generated when absent


def encoding_format(path: str) -> str:
    """The MIME type Croissant readers dispatch on, guessed from the file extension."""
    ext = posixpath.splitext(path)[1].lower()
    return _ENCODING_BY_EXT.get(ext, "application/octet-stream")


def croissant_data_type(type_name: str) -> str:
    """Map a detector's column type (pandas/arrow/plain names) to a schema.org data type."""
    t = type_name.strip().lower()
    if t in _DATATYPE_BY_NAME:
        return _DATATYPE_BY_NAME[t]
    if re.fullmatch(r"u?int(8|16|32|64)", t):
        return "sc:Integer"
    if re.fullmatch(r"(float|halffloat|double)(16|32|64)?", t):
        return "sc:Float"
    if t.startswith("timestamp") or t.startswith("datetime"):
        return "sc:DateTime"
    if t.startswith("date"):
        return "sc:Date"
    return "sc:Text"


def license_url(license_id: str) -> str:
    """SPDX id -> its spdx.org page; URLs and SPDX's NOASSERTION/NONE stay as given."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", license_id, re.IGNORECASE):
        return license_id
    if license_id in ("NOASSERTION", "NONE", ""):
        return license_id or "NOASSERTION"
    return f"https://spdx.org/licenses/{license_id}.html"


def build_croissant(
    meta: CroissantMeta, manifest: Manifest, report: DetectionReport
) -> dict[str, Any]:
    """The Croissant JSON-LD document as a plain dict (json.dumps-able)."""
    used_ids: set[str] = set()
    file_ids = {e.path: _unique(f"file/{e.path}", used_ids) for e in manifest.files}
    distribution: list[dict[str, Any]] = [_file_object(e, file_ids[e.path]) for e in manifest.files]
    record_sets: list[dict[str, Any]] = []
    for part in report.parts:
        rs = _record_set(part, manifest, file_ids, distribution, used_ids)
        if rs is not None:
            record_sets.append(rs)
    published = meta.date_published or dt.date.today()
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": meta.name,
        "description": meta.description,
        "license": license_url(meta.license),
        "url": meta.url,
        "creator": [{"@type": "sc:Person", "name": c} for c in meta.creators],
        "datePublished": published.isoformat(),
        "distribution": distribution,
    }
    doc["version"] = meta.version
    doc["citeAs"] = meta.cite_as or _citation(meta, published)
    if meta.keywords:
        doc["keywords"] = list(meta.keywords)
    if record_sets:
        doc["recordSet"] = record_sets
    return doc


def write_croissant(
    meta: CroissantMeta, manifest: Manifest, report: DetectionReport, out: Path
) -> None:
    """Write the JSON-LD atomically (app.durable.atomic_write)."""
    data = json.dumps(build_croissant(meta, manifest, report), ensure_ascii=False, indent=2)
    atomic_write(out, (data + "\n").encode("utf-8"))


def _file_object(entry: ManifestEntry, file_id: str) -> dict[str, Any]:
    return {
        "@type": "cr:FileObject",
        "@id": file_id,
        "name": entry.path,
        "contentUrl": entry.path,
        "contentSize": f"{entry.size} B",
        "encodingFormat": encoding_format(entry.path),
        "sha256": entry.sha256,
    }


def _part_files(part: FormatReport, manifest: Manifest) -> list[ManifestEntry]:
    """Files a tabular part covers: the part itself, or the matching files under its folder."""
    exts = _TABULAR[part.format]
    if part.path not in (".", ""):
        exact = [e for e in manifest.files if e.path == part.path]
        if exact:
            return exact
    prefix = "" if part.path in (".", "") else part.path.rstrip("/") + "/"
    return [
        e
        for e in manifest.files
        if e.path.startswith(prefix) and posixpath.splitext(e.path)[1].lower() in exts
    ]


def _record_set(
    part: FormatReport,
    manifest: Manifest,
    file_ids: dict[str, str],
    distribution: list[dict[str, Any]],
    used_ids: set[str],
) -> dict[str, Any] | None:
    if part.format not in _TABULAR or not part.schema:
        return None
    files = _part_files(part, manifest)
    if not files:
        return None
    rs_id = _unique(f"records/{part.path if part.path not in ('', '.') else 'root'}", used_ids)
    source: dict[str, Any]
    if len(files) == 1:
        source = {"fileObject": {"@id": file_ids[files[0].path]}}
    else:
        # Several shards of one table: a FileSet over exactly those files (globs escaped), the
        # per-file hashes stay on the FileObjects above.
        set_id = _unique(f"fileset/{part.path}", used_ids)
        distribution.append(
            {
                "@type": "cr:FileSet",
                "@id": set_id,
                "name": f"{part.path} ({part.format} files)",
                "encodingFormat": encoding_format(files[0].path),
                "includes": [glob.escape(e.path) for e in files],
            }
        )
        source = {"fileSet": {"@id": set_id}}
    fields = []
    for column, type_name in part.schema.items():
        fields.append(
            {
                "@type": "cr:Field",
                "@id": _unique(f"{rs_id}/{column}", used_ids),
                "name": column,
                "dataType": croissant_data_type(type_name),
                "source": {**source, "extract": {"column": column}},
            }
        )
    description = f"Rows of the {part.format} data in {part.path}"
    if part.record_count is not None:
        description += f" ({part.record_count} records)"
    return {
        "@type": "cr:RecordSet",
        "@id": rs_id,
        "name": rs_id,
        "description": description,
        "field": fields,
    }


def _citation(meta: CroissantMeta, published: dt.date) -> str:
    who = ", ".join(meta.creators) or "Unknown contributor"
    return f"{who} ({published.year}). {meta.name} (version {meta.version}). {meta.url}"


def _unique(candidate: str, used: set[str]) -> str:
    """A unique @id: mlcroissant rejects whitespace in ids, even URL-escaped."""
    candidate = re.sub(r"[^A-Za-z0-9._/-]+", "_", candidate)
    value, n = candidate, 2
    while value in used:
        value = f"{candidate}-{n}"
        n += 1
    used.add(value)
    return value
