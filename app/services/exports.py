"""Export a catalogued item as Croissant JSON-LD or as a BagIt bag."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from app.domain.errors import UsageError
from app.domain.units import plural
from app.manifest.bagit import write_bag
from app.manifest.canonical import Manifest
from app.manifest.croissant import CroissantMeta, write_croissant

if TYPE_CHECKING:
    from app.services.catalogue_views import ItemDetail


def export_item(
    detail: ItemDetail, manifest: Manifest, fmt: Literal["croissant", "bagit"], out: Path
) -> Path:
    s = detail.summary
    description = (
        f"{s.kind.value.capitalize()} of {plural(s.file_count, 'file')} ({s.format}), "
        f"manifest root sha256:{s.manifest_root}."
    )
    if fmt == "croissant":
        url = (
            f"{detail.registry_url}/v1/contributions/{detail.registry_id}"
            if detail.registry_id and detail.registry_url
            else detail.source_path.as_uri()
        )
        meta = CroissantMeta(
            name=s.title,
            description=description,
            license=s.license or "NOASSERTION",
            url=url,
            creators=(f"Contributor {detail.signed_by[:16]}",) if detail.signed_by else (),
            date_published=s.created_at.date(),
        )
        write_croissant(meta, manifest, detail.report, out)
        return out
    if fmt == "bagit":
        info = {
            "Source-Organization": "Contributor Desk",
            "External-Description": description,
            "External-Identifier": f"sha256:{s.manifest_root}",
        }
        if s.license:
            info["License"] = s.license
        write_bag(detail.source_path, manifest, out, info)
        return out
    raise UsageError(f"unknown export format {fmt!r}: use croissant or bagit")
