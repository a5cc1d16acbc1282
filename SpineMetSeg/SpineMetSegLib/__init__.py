"""SpineMetSegLib: the core of the SpineMetSeg extension (no Slicer, no Qt).

Usage::

    from SpineMetSegLib.images import imageio
    image = imageio.read_image("t1.nii.gz")

The core reads and writes images with their geometry, renders synthetic spine MRI, loads models from the
catalog, segments, measures lesions and computes metrics. The MRML logic (``SpineMetSegLib.mrml``) is the
only part that imports ``slicer``; it is imported explicitly, never from here.
"""

__version__ = "0.1.0"
