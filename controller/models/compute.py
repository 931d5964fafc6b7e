"""Compute nodes, the unified resource model (WP-3.1.3) and compute instances (GBT-6.2.7).

Rules of the unified resource model (WP-3.1.3), enforced by ``ComputeResource``:
- ``name`` is unique within its cluster (the site) and, with the site, is the key.
- A static resource (``dynamic=False``) must carry ``value``.
- A dynamic resource must carry ``acquisition_command`` and ``interval_s``; the
  command prints ``[value] [extended attributes]``.
- ``scope``: for an exclusive resource (``shareable=False``) it lists the owner
  node(s); for a shared resource it lists the sharing range (node names, or ``*``
  for the whole site). An exclusive resource cannot be scoped to ``*``.
- ``extended`` holds free-form attributes (topology, utilisation, alarms …) so new
  attributes need no code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from controller.models.base import Entity, Model, Name, register


class ResourceType(StrEnum):
    """Kinds of compute (WP-3.1.3 must cover CPU, GPU, NPU, FPGA; WP-3.1.5 classes)."""

    CPU = "cpu"
    GPU = "gpu"
    NPU = "npu"
    TPU = "tpu"
    FPGA = "fpga"
    MEMORY = "memory"
    STORAGE = "storage"
    OTHER = "other"


class Arch(StrEnum):
    X86 = "x86"
    ARM = "arm"
    OTHER = "other"


@register
class ComputeNode(Entity):
    """A server in a site. Fields: ``site``, ``name``, ``arch``, ``awake`` (powered on,
    WP-3.3.3 prefer-awake ordering), ``labels``."""

    KIND = "node"
    site: Name
    name: Name
    arch: Arch = Arch.X86
    awake: bool = True
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.site}/{self.name}"


@register
class ComputeResource(Entity):
    """One record of the unified resource model (WP-3.1.3), nine fields plus extras.

    Fields: ``name``, ``description``, ``dynamic``, ``consumable``, ``shareable``,
    ``value`` (numeric, in ``unit``), ``acquisition_command``, ``interval_s``
    (collection interval, seconds), ``scope``; plus ``site``, ``type``, ``unit``
    (e.g. ``cores``, ``GiB``, ``TFLOPS``), ``extended`` (free-form attributes) and
    ``compute_id`` (the unique compute identifier given at trusted onboarding,
    WP-3.1.2; empty until admitted).
    """

    KIND = "resource"
    site: Name
    name: Name
    description: str = Field(min_length=1)
    dynamic: bool = False
    consumable: bool = True
    shareable: bool = False
    value: float | None = None
    acquisition_command: str | None = None
    interval_s: float | None = Field(default=None, gt=0, le=86400)
    scope: list[str] = Field(min_length=1)
    type: ResourceType = ResourceType.OTHER
    unit: str = ""
    extended: dict[str, Any] = Field(default_factory=dict)
    compute_id: str = ""

    @property
    def key(self) -> str:
        return f"{self.site}/{self.name}"

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if not self.dynamic and self.value is None:
            raise ValueError(
                "a static resource (dynamic: false) needs a value; "
                "set value, or set dynamic: true with acquisition_command and interval_s"
            )
        if self.dynamic:
            if not self.acquisition_command:
                raise ValueError(
                    "a dynamic resource needs acquisition_command (prints '[value] [attributes]')"
                )
            if self.interval_s is None:
                raise ValueError("a dynamic resource needs interval_s (collection interval, s)")
        if not self.shareable and "*" in self.scope:
            raise ValueError(
                "an exclusive resource (shareable: false) must list its owner node(s) in "
                "scope, not '*'; set shareable: true to share it site-wide"
            )
        return self


class InstanceState(StrEnum):
    """GBT-6.2.7 instance states."""

    IN_USE = "in-use"
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"


class Precision(StrEnum):
    FP64 = "fp64"
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


class InstanceSpec(Model):
    """GBT-6.2.7 spec: ``compute_tflops``, ``throughput`` (e.g. img/s), ``memory_gib``,
    ``bandwidth_gbps``, ``precisions``."""

    compute_tflops: float = Field(ge=0)
    throughput: float | None = Field(default=None, ge=0)
    memory_gib: float = Field(ge=0)
    bandwidth_gbps: float = Field(default=0, ge=0)
    precisions: list[Precision] = Field(default_factory=lambda: [Precision.FP16])


class InstanceTopology(Model):
    """GBT-6.2.7 topology: card → server and slot → cluster and position."""

    card: str
    server: Name
    slot: int = Field(default=0, ge=0)
    cluster: Name
    position: str = ""


@register
class ComputeInstance(Entity):
    """A virtual accelerator instance (GBT-6.2.7): ``id``, ``type``, ``spec``,
    ``topology``, ``state``, ``task`` (the task occupying it, when in use)."""

    KIND = "instance"
    id: Name
    type: ResourceType = ResourceType.GPU
    spec: InstanceSpec
    topology: InstanceTopology
    state: InstanceState = InstanceState.AVAILABLE
    task: str | None = None

    @property
    def key(self) -> str:
        return self.id

    @model_validator(mode="after")
    def _in_use_has_task(self) -> Self:
        if self.state is InstanceState.IN_USE and not self.task:
            raise ValueError("an in-use instance must name the task occupying it")
        return self
