"""The Qt panel (Slicer only): ``SpineMetSeg.py`` imports it; it wires widgets to the MRML logic and holds no
logic of its own. Not part of the pip wheel (pyproject lists every package but this one)."""
