"""Common SPDX license ids for data and code, with their names, for the searchable picker.

Why a short list: contributors mostly pick from a handful; the field also accepts any other
SPDX id typed by hand.
"""

from __future__ import annotations

SPDX_LICENSES: tuple[tuple[str, str], ...] = (
    ("CC-BY-4.0", "Creative Commons Attribution 4.0"),
    ("CC-BY-SA-4.0", "Creative Commons Attribution Share Alike 4.0"),
    ("CC0-1.0", "Creative Commons Zero 1.0 (public domain dedication)"),
    ("CC-BY-NC-4.0", "Creative Commons Attribution Non Commercial 4.0"),
    ("CC-BY-NC-SA-4.0", "Creative Commons Attribution Non Commercial Share Alike 4.0"),
    ("CC-BY-ND-4.0", "Creative Commons Attribution No Derivatives 4.0"),
    ("CC-BY-NC-ND-4.0", "Creative Commons Attribution Non Commercial No Derivatives 4.0"),
    ("CC-BY-3.0", "Creative Commons Attribution 3.0"),
    ("CC-BY-SA-3.0", "Creative Commons Attribution Share Alike 3.0"),
    ("CC-BY-2.0", "Creative Commons Attribution 2.0"),
    ("CDLA-Permissive-2.0", "Community Data License Agreement – Permissive 2.0"),
    ("CDLA-Permissive-1.0", "Community Data License Agreement – Permissive 1.0"),
    ("CDLA-Sharing-1.0", "Community Data License Agreement – Sharing 1.0"),
    ("ODbL-1.0", "Open Data Commons Open Database License 1.0"),
    ("ODC-By-1.0", "Open Data Commons Attribution License 1.0"),
    ("PDDL-1.0", "Open Data Commons Public Domain Dedication & License 1.0"),
    ("OGL-UK-3.0", "Open Government Licence v3.0"),
    ("DL-DE-BY-2.0", "Data licence Germany – attribution – version 2.0"),
    ("etalab-2.0", "Etalab Open License 2.0"),
    ("C-UDA-1.0", "Computational Use of Data Agreement 1.0"),
    ("O-UDA-1.0", "Open Use of Data Agreement 1.0"),
    ("MIT", "MIT License"),
    ("Apache-2.0", "Apache License 2.0"),
    ("BSD-2-Clause", 'BSD 2-Clause "Simplified" License'),
    ("BSD-3-Clause", 'BSD 3-Clause "New" or "Revised" License'),
    ("ISC", "ISC License"),
    ("MPL-2.0", "Mozilla Public License 2.0"),
    ("GPL-2.0-only", "GNU General Public License v2.0 only"),
    ("GPL-3.0-only", "GNU General Public License v3.0 only"),
    ("GPL-3.0-or-later", "GNU General Public License v3.0 or later"),
    ("LGPL-3.0-only", "GNU Lesser General Public License v3.0 only"),
    ("AGPL-3.0-only", "GNU Affero General Public License v3.0"),
    ("EPL-2.0", "Eclipse Public License 2.0"),
    ("Unlicense", "The Unlicense"),
    ("0BSD", "BSD Zero Clause License"),
    ("Artistic-2.0", "Artistic License 2.0"),
    ("OpenRAIL", "Open Responsible AI License (RAIL)"),
    ("OPUBL-1.0", "Open Publication License v1.0"),
    ("GFDL-1.3-only", "GNU Free Documentation License v1.3 only"),
    ("LicenseRef-Proprietary", "All rights reserved (proprietary terms)"),
)

SPDX_IDS: tuple[str, ...] = tuple(spdx for spdx, _ in SPDX_LICENSES)
