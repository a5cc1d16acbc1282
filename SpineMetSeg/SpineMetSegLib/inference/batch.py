"""Segment many cases with one model load: per-case outputs, a cohort lesion table, a summary; resumable.

Output folder::

    OUTPUT/cases/<case>/labels.nii.gz     label map on the grid of the case's first input (metastasis = 1)
    OUTPUT/cases/<case>/lesions.csv       one row per lesion (as ``segment --lesions-csv``)
    OUTPUT/cases/<case>/segmentation.dcm  DICOM SEG referencing the first input's series (``dicom_seg=True``)
    OUTPUT/cases/<case>/case.json         facts, no metrics: series chosen and why, timings, model and version,
                                          and the SHA-256 of every output above (written last)
    OUTPUT/lesions.csv                    the cohort: one row per lesion, with its case
    OUTPUT/cases.csv                      one row per case: status, lesion count and volume, seconds, error
    OUTPUT/failures.csv                   case, error (only the cases that failed)
    OUTPUT/summary.json, summary.png      cases done and failed, lesion counts and volumes, a plot

A case is done when its ``case.json`` exists and every output it lists still has its recorded SHA-256; a rerun
skips done cases (``redo=True`` forces them) and retries the others. A case is built in a hidden folder beside
its final place and moved there only when complete, so a failure or Ctrl-C leaves nothing half-written. The
cohort files are rebuilt from the case folders at the end of every run, and ``merge`` rebuilds them from the
output folders of several shards.

Usage::

    report = run_batch(cases, "out/", card, model, device="cpu", dicom_seg=True, on_case=print)
    report.failed                        # [(case, error)]
    merge(["out-1", "out-2"], "out-all")
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import __version__
from ..analysis.lesions import LESION_COLUMNS
from ..errors import CancelledError, SpineMetSegError
from ..images.atomicfile import atomic_path, write_csv_atomic, write_text_atomic
from ..models.modelcard import ModelCard
from ..progress import ProgressCallback, no_progress
from .batch_cases import CaseInput

log = logging.getLogger(__name__)

CASES_FOLDER = "cases"
LABELS_FILE = "labels.nii.gz"
LESIONS_FILE = "lesions.csv"
DICOM_SEG_FILE = "segmentation.dcm"
CASE_JSON = "case.json"
COHORT_LESIONS = "lesions.csv"
CASES_TABLE = "cases.csv"
FAILURES_TABLE = "failures.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_PNG = "summary.png"
CASE_COLUMNS = ("case", "status", "lesions", "lesion_volume_ml", "seconds", "error", "folder")
COHORT_COLUMNS = ("case",) + tuple(LESION_COLUMNS)
HASH_CHUNK = 1 << 20
SUMMARY_DPI = 120


@dataclass
class BatchReport:
    """What a run did: the cases segmented now, skipped as already done, and failed (with the error)."""

    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def run_batch(
    cases: Sequence[CaseInput],
    output: os.PathLike,
    card: ModelCard,
    model: Any,
    *,
    device: str = "auto",
    tta: bool = False,
    mixed_precision: bool = True,
    threads: Optional[int] = None,
    dicom_seg: bool = False,
    redo: bool = False,
    progress: ProgressCallback = no_progress,
) -> BatchReport:
    """Segment every case into ``output`` with ``model`` (loaded once by the caller), then write the cohort files.

    A case that fails is recorded and the others go on. Ctrl-C (``KeyboardInterrupt``) or a cancel
    (``CancelledError``) removes the current case's partial folder, writes the cohort files of the cases done so
    far, and propagates. ``progress`` hears ``batch`` as each case starts and ends (the end with what became of the
    case, elapsed and remaining time), then ``done``; a failed case's traceback goes to the log (``logging``).
    """
    root = Path(output)
    try:
        (root / CASES_FOLDER).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SpineMetSegError(f"Cannot use {root} as the output folder: {error.strerror or error}.") from None
    report = BatchReport()
    started = time.perf_counter()
    worked: List[float] = []
    try:
        for index, case in enumerate(cases):
            progress("batch", 100.0 * index / max(1, len(cases)), f"case {index + 1}/{len(cases)} {case.name}")
            folder = root / CASES_FOLDER / case.name
            if not redo and verified_case(folder):
                report.skipped.append(case.name)
                progress(*_case_ended(index + 1, len(cases), started, worked, f"{case.name} already done"))
                continue
            case_started = time.perf_counter()
            try:
                facts = segment_case(case, folder, card, model, device=device, tta=tta,
                                     mixed_precision=mixed_precision, threads=threads, dicom_seg=dicom_seg)
            except (KeyboardInterrupt, CancelledError):
                raise
            except SpineMetSegError as error:
                report.failed.append((case.name, str(error)))
                note = f"{case.name} FAILED: {error}"
            except Exception as error:  # noqa: BLE001 - one broken case must not stop a cohort
                report.failed.append((case.name, f"{type(error).__name__}: {error}"))
                log.warning("%s failed; the traceback:", case.name, exc_info=True)
                note = f"{case.name} FAILED: {type(error).__name__}: {error}"
            else:
                report.done.append(case.name)
                note = f"{case.name}: {facts['lesion_count']} lesion(s)"
            worked.append(time.perf_counter() - case_started)
            progress(*_case_ended(index + 1, len(cases), started, worked, note))
    finally:
        report.seconds = time.perf_counter() - started
        write_cohort_files([root], root, failures=report.failed)
    progress("done", 100.0, f"{len(report.done)} done, {len(report.skipped)} skipped, {len(report.failed)} failed")
    return report


def segment_case(case: CaseInput, folder: Path, card: ModelCard, model: Any, *, device: str = "auto", tta: bool = False,
                 mixed_precision: bool = True, threads: Optional[int] = None, dicom_seg: bool = False
                 ) -> Dict[str, Any]:
    """Segment one case into ``folder`` (replaced whole only when every output is written); returns its facts."""
    from .. import inference
    from ..analysis import lesions
    from ..images import imageio
    from ..labels import ModelLabel

    if case.problem:
        raise SpineMetSegError(case.problem)
    order = [name for name in card.inputs if name in case.inputs]
    if len(order) < card.min_inputs:
        raise SpineMetSegError(
            f"{len(order)} of the sequences {', '.join(card.inputs)} given; the model needs {card.min_inputs}."
        )
    timings: Dict[str, float] = {}
    started = time.perf_counter()
    sources = {name: _as_series(case.inputs[name]) for name in order}
    images = {name: _read_input(sources[name], name) for name in order}
    timings["read"] = time.perf_counter() - started
    result = inference.segment_images(images, card, model, device=device, tta=tta,
                                      mixed_precision=mixed_precision, threads=threads)
    timings.update(result.timings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{case.name}-", dir=folder.parent))
    try:
        write_started = time.perf_counter()
        imageio.write_image(result.labels, staging / LABELS_FILE)
        found = lesions.measure_lesions(result.labels, label=int(ModelLabel.METASTASIS))
        lesions.write_lesion_csv(found, staging / LESIONS_FILE)
        outputs = [LABELS_FILE, LESIONS_FILE]
        seg_note = None
        if dicom_seg:
            first = sources[order[0]]
            if _is_series(first):
                from ..dicom.seg import write_dicom_seg

                write_dicom_seg(result.labels, first, card, staging / DICOM_SEG_FILE)
                outputs.append(DICOM_SEG_FILE)
            else:
                seg_note = f"no DICOM SEG: the first input ({order[0]}) is not a DICOM series"
        timings["write"] = time.perf_counter() - write_started
        facts = {
            "case": case.name,
            "status": "done",
            "inputs": {name: case.facts.get(name, {}) for name in order},
            "output_grid": order[0],
            "study": case.facts.get("study"),
            "series_choice": case.choice,
            "model": {"name": card.name, "version": card.version, "sha256": card.file.sha256},
            "spinemetseg_version": __version__,
            "device": result.device,
            "lesion_count": len(found),
            "lesion_volume_ml": float(sum(lesion.volume_ml for lesion in found)),
            "timings_s": {stage: round(seconds, 3) for stage, seconds in timings.items()},
            "dicom_seg": seg_note if seg_note else (DICOM_SEG_FILE if dicom_seg else None),
            "outputs": {name: file_sha256(staging / name) for name in outputs},
        }
        write_text_atomic(staging / CASE_JSON, json.dumps(facts, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return facts


def _as_series(source: Any) -> Any:
    """A DICOM series folder (from a manifest) as its ``Series``, so a DICOM SEG can reference it; when pydicom is
    not installed the folder stays a path (read as ``segment`` reads it)."""
    if _is_series(source) or not Path(source).is_dir():
        return source
    from ..dicom import headers

    try:
        return headers.scan_series_folder(source)
    except SpineMetSegError:
        return source  # no pydicom, or not DICOM: reading the folder says what is wrong


def _read_input(source: Any, name: str) -> Any:
    from ..images import imageio

    if _is_series(source):
        from ..dicom.series_io import read_series

        return read_series(source, name=name.upper())
    return imageio.read_image(source, name=name.upper())


def _is_series(source: Any) -> bool:
    return hasattr(source, "sorted_files")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_case_facts(folder: Path) -> Optional[Dict[str, Any]]:
    """The case's ``case.json`` when it is there and readable, else None."""
    try:
        facts = json.loads((folder / CASE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return facts if isinstance(facts, dict) else None


def verified_case(folder: Path) -> bool:
    """True when ``folder`` holds a finished case: ``case.json`` and every output it lists, with its SHA-256."""
    facts = read_case_facts(folder)
    if not facts or facts.get("status") != "done" or not isinstance(facts.get("outputs"), dict):
        return False
    try:
        return all(file_sha256(folder / name) == digest for name, digest in facts["outputs"].items())
    except OSError:
        return False


def write_cohort_files(sources: Sequence[Path], output: Path,
                       failures: Sequence[Tuple[str, str]] = ()) -> Dict[str, Any]:
    """Rebuild the cohort lesion table, the case table, failures and the summary in ``output`` from the finished
    cases under ``sources`` (output folders of one run or of several shards) and the ``failures`` given (plus
    those recorded in each source's failures table, unless the case is done in one of the sources)."""
    output.mkdir(parents=True, exist_ok=True)
    done: Dict[str, Tuple[Path, Dict[str, Any]]] = {}
    for source in sources:
        cases_root = Path(source) / CASES_FOLDER
        for folder in sorted(cases_root.iterdir()) if cases_root.is_dir() else []:
            if folder.name.startswith(".") or not folder.is_dir() or not verified_case(folder):
                continue
            if folder.name in done and done[folder.name][0] != folder:
                raise SpineMetSegError(
                    f"The case '{folder.name}' is done in two folders ({done[folder.name][0]} and {folder}): "
                    "merge shards of one cohort, each case in one shard."
                )
            done[folder.name] = (folder, read_case_facts(folder) or {})
    failed: Dict[str, str] = {}
    for source in sources:
        failed.update(_read_failures(Path(source) / FAILURES_TABLE))
    failed.update(dict(failures))
    failed = {name: error for name, error in failed.items() if name not in done}
    lesion_rows, case_rows = [], []
    for name in sorted(done):
        folder, facts = done[name]
        with open(folder / LESIONS_FILE, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        lesion_rows.extend({"case": name, **row} for row in rows)
        case_rows.append({"case": name, "status": "done", "lesions": len(rows),
                          "lesion_volume_ml": sum(float(row["volume_ml"]) for row in rows),
                          "seconds": sum(facts.get("timings_s", {}).values()), "error": None,
                          "folder": str(folder)})
    case_rows.extend({"case": name, "status": "failed", "lesions": None, "lesion_volume_ml": None, "seconds": None,
                      "error": error, "folder": None} for name, error in sorted(failed.items()))
    write_csv_atomic(output / COHORT_LESIONS, lesion_rows, COHORT_COLUMNS)
    write_csv_atomic(output / CASES_TABLE, case_rows, CASE_COLUMNS)
    write_csv_atomic(output / FAILURES_TABLE, [{"case": n, "error": e} for n, e in sorted(failed.items())],
                     ("case", "error"))
    summary = _summary(case_rows, lesion_rows)
    write_text_atomic(output / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    _summary_png(case_rows, lesion_rows, output / SUMMARY_PNG)
    return summary


def merge(sources: Sequence[os.PathLike], output: os.PathLike) -> Dict[str, Any]:
    """The cohort files of several shards' output folders, rebuilt in ``output``."""
    folders = [Path(source) for source in sources]
    for folder in folders:
        if not (folder / CASES_FOLDER).is_dir():
            raise SpineMetSegError(f"{folder} is not a batch output folder (it has no '{CASES_FOLDER}' folder).")
    return write_cohort_files(folders, Path(output))


def _read_failures(path: Path) -> Dict[str, str]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as stream:
        return {row["case"]: row.get("error", "") for row in csv.DictReader(stream) if row.get("case")}


def _summary(case_rows: List[Dict[str, Any]], lesion_rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    done = [row for row in case_rows if row["status"] == "done"]
    volumes = sorted(float(row["volume_ml"]) for row in lesion_rows)
    counts = [row["lesions"] for row in done]
    return {
        "cases_done": len(done),
        "cases_failed": len(case_rows) - len(done),
        "cases_with_lesions": sum(1 for count in counts if count),
        "lesions": len(volumes),
        "lesions_per_case": {"mean": sum(counts) / len(counts) if counts else None,
                             "max": max(counts) if counts else None},
        "lesion_volume_ml": {"total": sum(volumes), "median": _median(volumes),
                             "max": volumes[-1] if volumes else None},
        "failed": {row["case"]: row["error"] for row in case_rows if row["status"] == "failed"},
    }


def _median(values: Sequence[float]) -> Optional[float]:
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def _summary_png(case_rows: List[Dict[str, Any]], lesion_rows: List[Dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    figure = Figure(figsize=(10.0, 3.6), dpi=SUMMARY_DPI)
    counts = figure.add_subplot(1, 2, 1)
    done = [row for row in case_rows if row["status"] == "done"]
    per_case = [int(row["lesions"]) for row in done]
    cases_with = [per_case.count(n) for n in range(max(per_case + [1]) + 1)]
    counts.bar(range(len(cases_with)), cases_with, color="#0072B2", edgecolor="white")
    counts.set_xticks(range(len(cases_with)))
    counts.yaxis.get_major_locator().set_params(integer=True)
    counts.set_xlabel("lesions per case")
    counts.set_ylabel("cases")
    counts.set_title(f"{len(done)} case(s) done, {len(case_rows) - len(done)} failed", fontsize=9)
    sizes = figure.add_subplot(1, 2, 2)
    volumes = [float(row["volume_ml"]) for row in lesion_rows]
    if volumes:
        sizes.hist(volumes, bins=min(30, max(5, len(volumes) // 2)), color="#D55E00", edgecolor="white")
    sizes.set_xlabel("lesion volume (mL)")
    sizes.set_ylabel("lesions")
    sizes.yaxis.get_major_locator().set_params(integer=True)
    sizes.set_title(f"{len(volumes)} lesion(s)", fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


def _case_ended(finished: int, total: int, started: float, worked: List[float], note: str) -> Tuple[str, float, str]:
    """The progress event of a case that ended: cases finished, elapsed and (from the cases segmented so far)
    remaining time, and what became of the case."""
    elapsed = time.perf_counter() - started
    per_case = sum(worked) / len(worked) if worked else None
    remaining = "?" if per_case is None else _clock(per_case * (total - finished))
    return ("batch", 100.0 * finished / max(1, total),
            f"{finished}/{total} cases, elapsed {_clock(elapsed)}, remaining ~{remaining}: {note}")


def _clock(seconds: float) -> str:
    seconds = int(math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"

