"""Error analysis over a finished run: ``smpp similar`` (posts like one post) and ``smpp errors`` (the
error report). Both read the same post descriptions (``posts``), render with the same HTML kit
(``html_kit``) and take earlier neighbours from the one time-safe search the sequence features use
(``featurestore.features_sequence``)."""
