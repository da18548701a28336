"""Running trials: the optimize loop (:mod:`.runner`), one worker's trial loop (:mod:`.trial_loop`)
and when it stops (:mod:`.stopper`), one trial (:mod:`.objective`), fitting
one model (:mod:`.training`), local worker pools (:mod:`.workers`), and the pieces a trial runs
with: pruning (:mod:`.pruning`), per-epoch checkpoints (:mod:`.checkpoints`), signals
(:mod:`.signals`)."""
