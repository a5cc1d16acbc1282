"""The MRML logic of the SpineMetSeg Slicer module: Slicer nodes in, core calls, Slicer nodes out. No Qt.

Usage (inside Slicer, or anywhere ``pip install slicer-core`` works)::

    from SpineMetSegLib.mrml.application import MRMLContext
    from SpineMetSegLib.mrml.segmentation_logic import SegmentationLogic

    context = MRMLContext.standalone()              # in Slicer: MRMLContext.from_slicer()
    logic = SegmentationLogic(context)
    result = logic.segment({"t1": t1_volume_node})  # runs ``spinemetseg segment`` as a child process
    result.segmentation_node                        # named, coloured segments on the T1 grid

Each module here is one job of the panel: ``scene`` (node <-> SimpleITK image), ``transaction`` (leave the
scene as it was on failure), ``process_runner`` (the child process), ``segmentation_logic``, ``lesion_table``,
``evaluation_logic``, ``model_logic`` (catalog, download, import), ``sample_data``, ``dependencies``.
This package imports ``slicer`` (slicer-core); nothing in the core imports it.
"""
