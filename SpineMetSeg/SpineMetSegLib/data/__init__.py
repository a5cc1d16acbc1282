"""Real anatomy for training: import public spine MRI with vertebral-body masks, draw metastases into it.

Usage::

    from SpineMetSegLib.data.anatomy_case import generate_anatomy_case
    from SpineMetSegLib.data.real_case import load_real_case
    from SpineMetSegLib.data.vb_import import import_vb

    import_vb("fastcleverseg/ImageDatasets/VBs", "cases/")            # one case folder per distinct scan
    case = load_real_case("cases/vb2_05")                             # checked: images on one grid + body mask
    drawn = generate_anatomy_case(case, seed=3)                       # lesions and look-alikes drawn in

Modules: ``vb_import`` (the fastcleverseg VB2/VB3 importer; VB1 is refused), ``split`` (the fixed split by
subject), ``real_case`` (reading and checking a case folder), ``contrast`` (T1-/T2-/STIR-like and random
contrasts from one real sequence), ``lesion_drawing`` (metastases and look-alikes relative to the host body's
marrow) and ``anatomy_case`` (one drawn case, written like a phantom case).
"""

from __future__ import annotations

