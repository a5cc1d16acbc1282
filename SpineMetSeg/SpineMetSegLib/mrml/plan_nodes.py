"""Names the ablation plan gives its nodes, light to import (the panel builds its Plan section before SciPy, which
the planning core needs, may be installed)."""

# The plan's table node carries these attributes (lesion, device, limits) and node references (segmentation,
# probe lines, zone models); a saved scene keeps them.
PLAN_ATTRIBUTE = "SpineMetSeg.AblationPlan"
PROBE_REFERENCE = "SpineMetSeg.AblationProbe"
ZONE_REFERENCE = "SpineMetSeg.AblationZone"
SEGMENTATION_REFERENCE = "SpineMetSeg.AblationSegmentation"
# The plan table's Status for a value that breaks its limit.
BROKEN = "limit broken"
