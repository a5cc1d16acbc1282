"""Ablation planning: a probe's ablation zone, how it covers a lesion, and how close it comes to the spinal canal.

- ``device_table``: the device table (generic entries shipped, users add their own);
- ``zone``: the ellipsoidal zone placed by a probe's tip and direction, exact distances to its surface;
- ``anatomy``: the label map a plan is made on (lesions numbered as ``spinemetseg lesions`` numbers them);
- ``evaluation``: coverage, margin, canal distance, body volume in the zone;
- ``proposal``: a first probe placement to start from (never a recommendation);
- ``report``: the plan as JSON and as a picture.

Usage::

    from SpineMetSegLib.analysis.ablation import anatomy, device_table, evaluation, zone
    plan_anatomy = anatomy.PlanAnatomy.from_image(imageio.read_image("seg.nii.gz"))
    device = device_table.find_device(device_table.load_devices(), "generic-ellipsoid-20x15")
    probe = zone.Zone.from_probe(device, tip_ras=(10, 20, 30), direction_ras=(0, 1, 0))
    result = evaluation.evaluate_plan(plan_anatomy, 1, [probe])
"""
