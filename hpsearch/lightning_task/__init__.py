"""Tasks made of a user's own LightningModule and LightningDataModule, named in the study file
in LightningCLI's form (``task: {model: {class_path, init_args}, data: {...}, metric, direction}``).

:mod:`~hpsearch.lightning_task.config` (the block's schema), :mod:`~hpsearch.lightning_task.imports`
(what may be imported, from where), :mod:`~hpsearch.lightning_task.task` (the Task, routing of
settings, checks), :mod:`~hpsearch.lightning_task.module` (optimizer, L2, dropout by role),
:mod:`~hpsearch.lightning_task.fit` (training and scoring through the DataModule's loaders).
"""
