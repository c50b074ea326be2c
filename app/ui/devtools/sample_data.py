"""Plausible small datasets for --self-test and the screenshot script (deterministic).

Why generated: the self-test must run from an installed app with no test fixtures around,
and must never read the user's files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path


def write_air_quality(folder: Path, rows: int = 400) -> Path:
    """A CSV time series, like a city's open-data export."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    stations = ["Centre", "Harbour", "North Park", "Ring Road", "University"]
    lines = ["date,station,pm25,no2,o3,temperature_c"]
    for i in range(rows):
        day = f"2026-{1 + i // 31 % 12:02d}-{1 + i % 28:02d}"
        lines.append(
            f"{day},{stations[i % len(stations)]},{rng.uniform(3, 60):.1f},"
            f"{rng.uniform(5, 80):.1f},{rng.uniform(10, 120):.1f},{rng.uniform(-5, 32):.1f}"
        )
    (folder / "measurements.csv").write_text("\n".join(lines) + "\n", "utf-8")
    (folder / "README.md").write_text(
        "# Air quality\n\nDaily readings from five city stations.\n", "utf-8"
    )
    return folder


def write_reviews(folder: Path, rows: int = 300) -> Path:
    """JSON Lines text with labels, like a sentiment dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    words = ["great", "slow", "friendly", "broken", "fast", "clean", "noisy", "helpful"]
    with (folder / "reviews.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(rows):
            text = " ".join(rng.choice(words) for _ in range(8))
            label = "positive" if rng.random() > 0.4 else "negative"
            fh.write(json.dumps({"id": i, "text": text, "label": label}) + "\n")
    return folder
