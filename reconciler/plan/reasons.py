"""Why the planner leaves a resource alone: the closed set of block reasons.

A `Blocked` entry is shown to users (status conditions, `volctl plan`, REST), and status maps
some reasons to phases (Unschedulable, Unknown, Detaching).  Keeping the vocabulary in one
StrEnum lets that mapping be an exhaustive `match`, so a new reason cannot be forgotten
there; the values are the strings users and scripts already see.
"""

from __future__ import annotations

from enum import StrEnum


class BlockReason(StrEnum):
    # the spec cannot be satisfied as written
    INVALID_SPEC = "InvalidSpec"  # refers to something missing, or a volume attached twice
    UNSCHEDULABLE = "Unschedulable"  # no host has room (placement, cold resize, replace)
    SHRINK_REFUSED = "ShrinkRefused"  # a volume may only grow
    NO_FREE_TARGET = "NoFreeTarget"  # the domain has no free disk target left
    # something in the world is not volctl's, or not what volctl expects
    NAME_CONFLICT = "NameConflict"  # an RBD image at a managed name that is not ours
    IMAGE_CONFLICT = "ImageConflict"  # an image's RBD name holds something else
    IMAGE_MISSING = "ImageMissing"  # the rbd snapshot an Image names does not exist
    ROOT_IN_USE = "RootInUse"  # a root disk opened by a client volctl cannot see
    VOLUME_IN_USE = "VolumeInUse"  # a volume attached to a foreign domain
    # partial knowledge: wait until the world can be seen
    HOST_UNKNOWN = "HostUnknown"  # the resource may exist on an unreachable host
    STORAGE_UNKNOWN = "StorageUnknown"  # Ceph cannot be observed
    DEFERRED_WHILE_UNKNOWN = "DeferredWhileUnknown"  # deletion/replace held until all is known
    DELETE_GUARD = "DeleteGuard"  # a mass deletion held for an explicit override
    # waiting for another resource
    DETACHING = "Detaching"  # the volume is still leaving a domain
    VOLUME_NOT_READY = "VolumeNotReady"  # the attachment's volume is blocked
    VM_NOT_READY = "VMNotReady"  # the attachment's VM is blocked
    DEPENDENCY_BLOCKED = "DependencyBlocked"  # an action it waits for is not planned
