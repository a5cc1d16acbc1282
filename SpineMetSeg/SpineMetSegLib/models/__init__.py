"""Models: the typed model card, the catalog, the cache and verified downloads, safe weights, the network builder,
and the one loader (``models.loader``) every caller uses."""
