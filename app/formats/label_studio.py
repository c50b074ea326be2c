"""Label Studio JSON export: a list of tasks, each with `data` and `annotations` (results).

Streamed task by task, so an export of any size is counted with bounded memory.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from app.domain.problems import Problem, Severity
from app.formats.base import FormatReport
from app.formats.files import FileEntry, ScanContext, open_binary, problem_for_os_error
from app.formats.jsondata import JsonStreamError, iter_array

# Result value keys that carry label names, by Label Studio control tag.
_LABEL_KEYS = (
    "rectanglelabels",
    "polygonlabels",
    "labels",
    "choices",
    "keypointlabels",
    "brushlabels",
    "ellipselabels",
    "polylinelabels",
    "timeserieslabels",
    "paragraphlabels",
    "hypertextlabels",
    "taxonomy",
)


def is_label_studio_task(element: Any) -> bool:
    return (
        isinstance(element, dict)
        and isinstance(element.get("data"), dict)
        and any(isinstance(element.get(k), list) for k in ("annotations", "predictions"))
    )


def _labels(value: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in _LABEL_KEYS:
        items = value.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            # taxonomy values are paths: [["Animal", "Cat"]]
            if isinstance(item, list):
                out.append("/".join(str(x) for x in item))
            else:
                out.append(str(item))
    return out


def detect_label_studio(entry: FileEntry, ctx: ScanContext) -> FormatReport:
    """Tasks, annotations and result regions counted; labels collected from the results."""
    report = FormatReport(format="label-studio", path=entry.rel)
    tasks = annotations = cancelled = results = unannotated = not_tasks = 0
    labels = Counter[str]()
    result_types = Counter[str]()
    data_keys: dict[str, None] = {}
    try:
        with open_binary(entry.path) as fh:
            for task in iter_array(fh):
                if tasks % 4096 == 0:
                    ctx.check_cancel()
                if not is_label_studio_task(task):
                    not_tasks += 1
                    continue
                tasks += 1
                for key in task["data"]:
                    data_keys.setdefault(str(key), None)
                task_annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
                if not task_annotations:
                    unannotated += 1
                for ann in task_annotations:
                    annotations += 1
                    if ann.get("was_cancelled"):
                        cancelled += 1
                        continue
                    for res in ann.get("result") or []:
                        if not isinstance(res, dict):
                            continue
                        results += 1
                        result_types[str(res.get("type", "unknown"))] += 1
                        value = res.get("value")
                        if isinstance(value, dict):
                            labels.update(_labels(value))
    except OSError as exc:
        report.problems.append(problem_for_os_error(exc, entry.rel))
    except JsonStreamError as exc:
        report.problems.append(
            Problem(
                Severity.ERROR,
                f"'{entry.rel}' {exc} ({tasks} tasks before that point).",
                entry.rel,
            )
        )
    report.record_count = results
    report.classes = sorted(labels)
    report.details.update(
        dataKeys=list(data_keys),
        tasks=tasks,
        annotations=annotations,
        cancelledAnnotations=cancelled,
        results=results,
        resultTypes=dict(sorted(result_types.items())),
        labelCounts=dict(sorted(labels.items())),
    )
    if unannotated:
        report.problems.append(
            Problem(
                Severity.INFO,
                f"{unannotated} of {tasks} tasks in '{entry.rel}' have no annotations.",
                entry.rel,
            )
        )
    if not_tasks:
        report.problems.append(
            Problem(
                Severity.WARNING,
                f"{not_tasks} entries of '{entry.rel}' are not Label Studio tasks "
                "(no 'data' with 'annotations').",
                entry.rel,
            )
        )
    return report
