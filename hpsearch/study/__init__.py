"""The study file and what it defines: the validated config (:mod:`.config`), the search space
(:mod:`.space`), the checked definition (:mod:`.definition`) and the one a stored study was
searched with (:mod:`.stored`), the sampler and pruner (:mod:`.algorithms`, :mod:`.history`)
and the study metadata helpers (:mod:`.meta`)."""
