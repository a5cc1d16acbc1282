"""Analysis of results: lesions and their measures, lesion matching, metrics and surface distances, cohorts,
the metrics display table, figures, and ablation planning (``analysis.ablation``)."""
