"""DICOM studies in, DICOM SEG out: find the studies and series of a folder, recognise the sagittal T1, T2 and
STIR series from their tags, read a series as a volume, and write the segmentation back as DICOM SEG.

Needs ``pydicom`` (and ``highdicom`` for DICOM SEG): ``pip install 'spinemetseg[dicom]'``.

Usage::

    from SpineMetSegLib.dicom import headers, recognition
    studies = headers.scan_studies("export/")                  # {StudyInstanceUID: Study}
    choice = recognition.choose_series(studies[uid].series)    # the best T1, T2, STIR and why
"""

from ..errors import SpineMetSegError


def require_pydicom():
    """The ``pydicom`` module, or a ``SpineMetSegError`` saying how to install it."""
    try:
        import pydicom
    except ImportError:
        raise SpineMetSegError(
            "Reading DICOM headers needs pydicom: pip install 'spinemetseg[dicom]' (or pip install pydicom)."
        ) from None
    return pydicom
