"""The ``task:`` block that names a user's own Lightning classes (LightningCLI's form).

```yaml
task:
  model: {class_path: mypkg.models.Net, init_args: {hidden: 128}}
  data:  {class_path: mypkg.data.ImageFolderData, init_args: {root: data/images}}
  metric: val_acc
  direction: maximize
```

Structure only (pydantic, strict); the classes are found, checked and imported by
:mod:`hpsearch.lightning_task.imports`. No torch or Lightning imports here.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Lightning precisions a study file may ask for.
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true", "64", "16-true", "bf16-true", "transformer-engine")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


class ClassRef(BaseModel):
    """``{class_path: package.module.Class, init_args: {...}}``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    class_path: str = Field(min_length=1)
    init_args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("class_path")
    @classmethod
    def _dotted(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) < 2 or not all(p.isidentifier() for p in parts):
            raise ValueError(f"expected a dotted path package.module.Class, got {value!r}")
        return value

    @field_validator("init_args")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = next((k for k in value if not k.isidentifier()), None)
        if bad is not None:
            raise ValueError(f"{bad!r} is not an argument name")
        return value

    @property
    def module(self) -> str:
        return self.class_path.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.class_path.rpartition(".")[2]


class LightningTaskConfig(BaseModel):
    """A task made of a user's ``LightningModule`` (``model``) and ``LightningDataModule``
    (``data``), the metric the module logs with ``self.log`` and its direction, and where
    trials train (``accelerator``, ``devices``, ``precision``: the Trainer's arguments)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    model: ClassRef
    data: ClassRef
    metric: str = Field(min_length=1)
    direction: Literal["maximize", "minimize"]
    accelerator: Literal[ACCELERATORS] = "auto"  # type: ignore[valid-type]
    # One device per trial (a trial is one process); a one-element list picks which one.
    devices: Union[Literal[1], list[int]] = 1
    precision: Literal[PRECISIONS] = "32-true"  # type: ignore[valid-type]

    @field_validator("devices")
    @classmethod
    def _one_device(cls, value: Any) -> Any:
        if isinstance(value, list) and (len(value) != 1 or value[0] < 0):
            raise ValueError("a trial trains on one device: give 1 or a one-element list [index]")
        return value

    @property
    def name(self) -> str:
        """The task's name as studies and model files show it (never resolved by name:
        ``resolve_task`` refuses it, see :mod:`hpsearch.lightning_task.imports`)."""
        return f"lightning:{self.model.class_path}+{self.data.class_path}"

    def plain(self) -> dict[str, Any]:
        """The block as JSON data (for fingerprints and model files)."""
        return self.model_dump(mode="json")
