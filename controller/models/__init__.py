"""The domain model: the one language between CPN's packages.

Every storable object is an ``Entity`` with a ``KIND`` and a ``key``; see
``controller.models.base``.
"""

from __future__ import annotations

from controller.models.base import ENTITY_KINDS, Entity, Model, Name, Strict
from controller.models.compute import (
    Arch,
    ComputeInstance,
    ComputeNode,
    ComputeResource,
    InstanceSpec,
    InstanceState,
    InstanceTopology,
    Precision,
    ResourceType,
)
from controller.models.dataset import Dataset, DatasetState
from controller.models.job import TERMINAL, Job, JobKind, JobRun, JobSpec, JobState
from controller.models.link import Link, LinkKind, LinkState
from controller.models.metrics import ComputeMetrics
from controller.models.service import (
    AffinityMode,
    Requirements,
    Service,
    ServiceContactInstance,
)
from controller.models.site import (
    InterconnectKind,
    Router,
    Site,
    SiteKind,
    interconnect_preference,
)
from controller.models.tenancy import Quota, Role, Tenant, User

__all__ = [
    "ENTITY_KINDS",
    "TERMINAL",
    "AffinityMode",
    "Arch",
    "ComputeInstance",
    "ComputeMetrics",
    "ComputeNode",
    "ComputeResource",
    "Dataset",
    "DatasetState",
    "Entity",
    "InstanceSpec",
    "InstanceState",
    "InstanceTopology",
    "InterconnectKind",
    "Job",
    "JobKind",
    "JobRun",
    "JobSpec",
    "JobState",
    "Link",
    "LinkKind",
    "LinkState",
    "Model",
    "Name",
    "Precision",
    "Quota",
    "Requirements",
    "ResourceType",
    "Role",
    "Router",
    "Service",
    "ServiceContactInstance",
    "Site",
    "SiteKind",
    "Strict",
    "Tenant",
    "User",
    "interconnect_preference",
]
