"""The Pulumi binding of a kind made from its model alone (smtps/kinds.py): one provider class for every such kind,
and a resource class per kind made from its model's name and type name. So a new kind needs no module here.

The engine keeps each resource's provider pickled in its state, by its class's module path and the instance's
attributes: a kind bound here is kept as `KindProvider` and the kind's name, which it finds its model by. The four
kinds that were bound before this binding existed keep their own provider classes (components/<kind>.py), which the
states written since then name."""

from __future__ import annotations

import types
from typing import Any, ClassVar

from smtps_iredmail.core import kinds
from smtps_iredmail.core.model import Model

from .base import HostProvider, HostResource

# The module of every kind's type token: pulumi-python:dynamic/smtps:NAME.
MODULE = "smtps"


class KindProvider(HostProvider):
    """The provider of a kind that has no class of its own: its model is found by the kind's name."""

    def __init__(self, kind_name: str) -> None:
        super().__init__()
        self.kind_name = kind_name

    @property  # type: ignore[override]
    def model(self) -> Model:
        return kinds.named(self.kind_name)


class KindResource(HostResource):
    """Base of the resource classes `resource_for` makes."""

    kind_name: ClassVar[str]

    @classmethod
    def new_provider(cls) -> HostProvider:
        return KindProvider(cls.kind_name)


def resource_for(model: Model) -> type[HostResource]:
    """The resource class of a kind without a class of its own, typed pulumi-python:dynamic/smtps:RESOURCE."""

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(kind_name=model.name, __module__=__name__)

    return types.new_class(model.resource, (KindResource,), {"module": MODULE, "name": model.resource}, body)
