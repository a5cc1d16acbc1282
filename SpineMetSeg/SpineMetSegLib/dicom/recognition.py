"""Recognise the sagittal T1, T2 and STIR series of a study from their DICOM tags, with a confidence and a reason.

What decides, in this order:

1. **Set aside** (never chosen, listed with the reason): localisers (ImageType LOCALIZER, a name such as
   *localizer*, *scout*, *survey*, *3-plane*, or slices in several orientations), series of fewer than
   ``MIN_SLICES`` slices, diffusion (ImageType DIFFUSION/ADC/TRACE, *DWI*, *ADC*, *diff*), subtractions and
   reformats (ImageType SUBTRACTION/MPR), contrast-enhanced series (ContrastBolusAgent filled in, or *+C*,
   *post*, *Gd*, *KM*, *contrast* in the name), non-sagittal planes (ImageOrientationPatient: the slice normal
   nearest the left-right axis is sagittal), FLAIR (inversion time of ``FLAIR_MIN_TI_MS`` or more), proton
   density (long TR, short TE) and fat-suppressed T1 (the T1 channel expects bright marrow fat).
2. **Weighting from the acquisition tags**: an inversion-recovery sequence (ScanningSequence IR) with an inversion
   time up to ``STIR_MAX_TI_MS`` is a STIR; a long TR with a long TE is T2, fat-suppressed T2 (ScanOptions FS or
   a *fat-sat*/*SPAIR* name) counts as STIR because that is what the STIR channel sees; a short TR with a short TE
   (or an inversion time between STIR and FLAIR) is T1.
3. **Weighting from the name** (SeriesDescription, ProtocolName, SequenceName): *T1*, *T2* (not *T12*, a vertebra),
   *STIR*, *TIRM*, *T2 FS*, *SPAIR* in their vendor spellings (``sag_t1_tse``, ``SAG T1 FSE``, ``T1W_TSE``,
   ``t2_tirm_sag``, ``Sag STIR``...).

Confidence: tags and name agree 0.95; tags alone 0.8; the name alone (timing tags missing) 0.6; tags and name
disagree 0.4 (the tags win; the reason says so); 0.1 less for a fat-suppressed T2 standing in for a STIR.
Among several series of one kind the most confident wins, then the one with more slices, then the later series
(a repeat after motion usually replaces the first).

Usage::

    choice = choose_series(study.series)
    choice.chosen["t1"].series.label, choice.chosen["t1"].reason
    print("\\n".join(choice.describe()))
    choice.require(["t1", "t2", "stir"], min_count=1)   # SpineMetSegError naming what was found if none
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import SpineMetSegError
from .headers import Series

SEQUENCES = ("t1", "t2", "stir")
MIN_SLICES = 5
STIR_MAX_TI_MS = 300.0  # STIR nulls fat: TI about 130-180 ms at 1.5 T, 180-250 ms at 3 T
FLAIR_MIN_TI_MS = 1500.0  # FLAIR nulls fluid: TI about 2000-2800 ms
T1_MAX_TR_MS = 1000.0
T1_MAX_TE_MS = 30.0
T2_MIN_TR_MS = 1500.0
T2_MIN_TE_MS = 60.0
PD_MAX_TE_MS = 40.0

CONFIDENCE_AGREE = 0.95
CONFIDENCE_TAGS = 0.8
CONFIDENCE_NAME = 0.6
CONFIDENCE_DISAGREE = 0.4
# A fat-suppressed T2 stands in for a STIR: chosen only when no true STIR (inversion recovery) is as sure.
STAND_IN_PENALTY = 0.1

_B, _E = r"(?<![a-z0-9])", r"(?![a-z0-9])"  # word edges where '_' and spaces both separate
NAME_PATTERNS = (
    ("stir", re.compile(rf"stir|tirm|{_B}t2.*({_B}fs{_E}|fat.?sat|fat.?sup|spair|spir{_E}|{_B}fs{_B})")),
    ("t1", re.compile(rf"{_B}t1(?![0-9])")),
    ("t2", re.compile(rf"{_B}t2(?![0-9])")),
)
LOCALISER_NAME = re.compile(rf"locali[sz]er|{_B}loc{_E}|scout|survey|{_B}surv|pilot|3.?plane|tri.?plane|aahead")
DIFFUSION_NAME = re.compile(rf"{_B}dwi|{_B}adc{_E}|diff|{_B}trace{_E}|{_B}b\d{{2,4}}{_E}")
CONTRAST_NAME = re.compile(
    rf"\+\s*c{_E}|{_B}c\s*\+|{_B}post{_E}|post.?(contrast|gd|gad|km)|{_B}gd{_E}|gado|{_B}gad{_E}|\+\s*km|{_B}km{_E}"
    rf"|contrast|{_B}ce{_E}|\+\s*gd"
)
FAT_SUPPRESSION_OPTIONS = {"FS", "FAT_SAT", "FATSAT", "SFS", "CHESS", "SPAIR", "SPIR", "FSAT"}
FAT_SUPPRESSION_NAME = re.compile(rf"{_B}fs{_E}|fat.?sat|fat.?sup|spair|spir{_E}|{_B}fs{_B}")
LOCALISER_TYPES = {"LOCALIZER", "LOCALISER", "SCOUT"}
DIFFUSION_TYPES = {"DIFFUSION", "ADC", "TRACEW", "TRACE", "EADC", "FA"}
DERIVED_TYPES = {"SUBTRACTION", "SUB", "MPR", "MIP", "REFORMATTED", "PROJECTION IMAGE"}


@dataclass(frozen=True)
class Candidate:
    """A series recognised as one sequence kind, how sure, and why in one line."""

    series: Series
    sequence: str
    confidence: float
    reason: str


@dataclass
class SeriesChoice:
    """For one study: the best series of each kind, the other candidates, and the series set aside with why."""

    chosen: Dict[str, Candidate] = field(default_factory=dict)
    alternatives: Dict[str, List[Candidate]] = field(default_factory=dict)
    rejected: List[Tuple[Series, str]] = field(default_factory=list)

    def describe(self) -> List[str]:
        """Lines a person reads: each choice with its reason, the other candidates, what was set aside."""
        lines = []
        for kind in SEQUENCES:
            if kind in self.chosen:
                best = self.chosen[kind]
                lines.append(f"{kind.upper()}: {best.series.label} ({best.confidence:.2f}): {best.reason}")
                for other in self.alternatives.get(kind, []):
                    lines.append(
                        f"  also {kind.upper()}: {other.series.label} ({other.confidence:.2f}): {other.reason}"
                    )
            else:
                lines.append(f"{kind.upper()}: none")
        lines.extend(f"set aside: {series.label}: {why}" for series, why in self.rejected)
        return lines

    def found(self) -> str:
        """What the study holds, in one sentence (for messages when a sequence is missing)."""
        parts = [f"{c.series.label} ({c.sequence.upper()})" for c in self.chosen.values()]
        parts += [f"{series.label} ({why})" for series, why in self.rejected]
        return f"{len(parts)} series: " + "; ".join(parts) if parts else "no image series"

    def require(self, wanted: Sequence[str], min_count: int = 1) -> Dict[str, Candidate]:
        """The chosen series among ``wanted`` kinds; ``SpineMetSegError`` naming what was found when fewer than
        ``min_count`` are there."""
        usable = {kind: self.chosen[kind] for kind in wanted if kind in self.chosen}
        if len(usable) < min_count:
            names = ", ".join(kind.upper() for kind in wanted)
            raise SpineMetSegError(
                f"No usable sagittal {names} series (the model needs at least {min_count}); found {self.found()}."
            )
        return usable


def classify_series(series: Series) -> Tuple[Optional[Candidate], Optional[str]]:
    """(candidate, None) when ``series`` is a usable sagittal T1, T2 or STIR, else (None, the reason why not)."""
    name = " ".join((series.description, series.protocol, series.sequence_name)).lower()
    image_type = set(series.image_type)
    if image_type & LOCALISER_TYPES or LOCALISER_NAME.search(name):
        return None, "localiser"
    if len(series.orientations) > 1:
        return None, f"slices in {len(series.orientations)} orientations (a localiser or a composed series)"
    if len(series.files) < MIN_SLICES:
        return None, f"{len(series.files)} slice(s), fewer than {MIN_SLICES}"
    if image_type & DIFFUSION_TYPES or DIFFUSION_NAME.search(name):
        return None, "diffusion-weighted"
    if image_type & DERIVED_TYPES:
        return None, "derived (" + "/".join(sorted(image_type & DERIVED_TYPES)).lower() + ")"
    if series.contrast_agent or CONTRAST_NAME.search(name):
        agent = f" ({series.contrast_agent})" if series.contrast_agent else ""
        return None, f"contrast-enhanced{agent}: the model takes native images"
    if series.plane != "sagittal":
        return None, f"{series.plane}, not sagittal"
    fat_suppressed = bool(set(series.scan_options) & FAT_SUPPRESSION_OPTIONS) or bool(FAT_SUPPRESSION_NAME.search(name))
    tag_kind, tag_reason = _weighting_from_tags(series, fat_suppressed)
    if tag_kind in ("flair", "pd", "t1 fat-suppressed"):
        return None, tag_reason
    name_kind = next((kind for kind, pattern in NAME_PATTERNS if pattern.search(name)), None)
    named = f"name '{series.description or series.protocol}'"
    # A STIR recognised from a fat-suppressed T2 rather than from a short inversion time.
    penalty = STAND_IN_PENALTY if tag_kind == "stir" and not series.inversion_time else 0.0
    if tag_kind and name_kind == tag_kind:
        return Candidate(series, tag_kind, CONFIDENCE_AGREE - penalty, f"{tag_reason}; {named} agrees"), None
    if tag_kind and name_kind:
        return Candidate(series, tag_kind, CONFIDENCE_DISAGREE - penalty,
                         f"{tag_reason}, but the {named} says {name_kind.upper()} (tags win)"), None
    if tag_kind:
        return Candidate(series, tag_kind, CONFIDENCE_TAGS - penalty, tag_reason), None
    if name_kind:
        return Candidate(series, name_kind, CONFIDENCE_NAME, f"{named} ({tag_reason})"), None
    return None, f"weighting not recognised ({tag_reason}; no T1/T2/STIR in the name)"


def choose_series(series: Sequence[Series]) -> SeriesChoice:
    """The best series of each kind among ``series`` (one study), the others listed, the rest set aside."""
    choice = SeriesChoice()
    by_kind: Dict[str, List[Candidate]] = {}
    for one in series:
        candidate, why = classify_series(one)
        if candidate is None:
            choice.rejected.append((one, why or "not recognised"))
        else:
            by_kind.setdefault(candidate.sequence, []).append(candidate)
    for kind in SEQUENCES:
        ranked = sorted(by_kind.get(kind, []), key=_rank, reverse=True)
        if ranked:
            choice.chosen[kind] = ranked[0]
            choice.alternatives[kind] = ranked[1:]
    return choice


def _rank(candidate: Candidate) -> Tuple[float, int, int]:
    number = candidate.series.number if candidate.series.number is not None else -1
    return candidate.confidence, len(candidate.series.files), number


def _weighting_from_tags(series: Series, fat_suppressed: bool) -> Tuple[Optional[str], str]:
    """(kind or None, the tags that decided it). Kinds beyond the three: ``flair``, ``pd``, ``t1 fat-suppressed``."""
    tr, te, ti = series.repetition_time, series.echo_time, series.inversion_time
    timing = ", ".join(
        f"{name} {value:g} ms" for name, value in (("TR", tr), ("TE", te), ("TI", ti)) if value is not None
    ) or "no TR/TE"
    inversion = "IR" in series.scanning_sequence or (ti is not None and ti > 0)
    if inversion and ti is not None and ti > 0:
        if ti <= STIR_MAX_TI_MS:
            return "stir", f"inversion recovery, {timing}: short inversion time nulls fat (STIR)"
        if ti >= FLAIR_MIN_TI_MS:
            return "flair", f"FLAIR ({timing}): fluid-suppressed, not a spine T2"
        return "t1", f"inversion recovery, {timing}: T1-weighted"
    if tr is None or te is None:
        return None, timing
    if tr >= T2_MIN_TR_MS and te >= T2_MIN_TE_MS:
        if fat_suppressed:
            return "stir", f"{timing} (T2-weighted), fat-suppressed: what the STIR channel sees"
        return "t2", f"{timing}: T2-weighted"
    if tr >= T2_MIN_TR_MS and te < PD_MAX_TE_MS:
        return "pd", f"proton-density weighted ({timing})"
    if tr <= T1_MAX_TR_MS and te <= T1_MAX_TE_MS:
        if fat_suppressed:
            return "t1 fat-suppressed", f"fat-suppressed T1 ({timing}): the T1 channel expects bright marrow fat"
        return "t1", f"{timing}: T1-weighted"
    return None, timing
