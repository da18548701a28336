"""What reads the results of a study: the report (:mod:`.report`, decision boundaries
included), multi-seed verification on the test split (:mod:`.verify`, statistics in
:mod:`.stats`), exports (:mod:`.export`) and optuna-dashboard (:mod:`.dashboard`)."""
