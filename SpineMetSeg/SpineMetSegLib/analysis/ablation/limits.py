"""The planning limits' defaults: chosen starting values for the planner to change, not clinical rules.

No heavy imports here, so the command line's ``--help`` can show them quickly.
"""

# Margin the zone should keep around the lesion, and distance it should keep from the spinal canal (the issue's
# defaults; the planner sets their own).
DEFAULT_MARGIN_MM = 5.0
DEFAULT_CANAL_CLEARANCE_MM = 5.0
# The probe's line behind the tip must pass the canal by this much.
DEFAULT_SHAFT_CLEARANCE_MM = 2.0
# The proposal searches probe directions within this half-angle around anterior (+A): entering from behind, as in a
# transpedicular approach.
ANTERIOR_RAS = (0.0, 1.0, 0.0)
DEFAULT_CONE_HALF_ANGLE_DEG = 30.0
