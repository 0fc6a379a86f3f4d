"""The halt switch: Namespace annotations that end every fault and refuse new ones.

* `agentops.dev/halt` on a Namespace halts the faults in that namespace;
* `agentops.dev/halt-all` on the operator's own namespace (`--control-namespace`)
  halts them in the whole cluster.

The value is the reason, shown in each halted Fault's status. Only the control
namespace can halt the cluster: whoever may annotate one team's namespace must not be
able to stop everyone's experiments. Pure state and decisions; the reconciler feeds it
Namespace watch events and asks it, per fault, whether to stop.
"""

from __future__ import annotations

import logging
from typing import Any

from agentops_operator.fault_lifecycle import HALTED, EarlyStop
from agentops_operator.resources import HALT_ALL_ANNOTATION, HALT_ANNOTATION

log = logging.getLogger(__name__)

ALL = "*"  # `observe` returns this when every namespace's faults must be looked at again


class HaltSwitch:
    def __init__(self, control_namespace: str) -> None:
        self.control_namespace = control_namespace
        self.namespaces: dict[str, str] = {}  # namespace → reason
        self.everything: str | None = None  # the cluster-wide reason

    def observe(self, event_type: str | None, body: dict[str, Any]) -> str | None:
        """Take in a Namespace event; return what changed: a namespace, ALL, or None."""
        name = body["metadata"]["name"]
        annotations = {} if event_type == "DELETED" else (body["metadata"].get("annotations") or {})
        before = (self.namespaces.get(name), self.everything)
        reason = annotations.get(HALT_ANNOTATION)
        if reason is not None:
            self.namespaces[name] = reason or "no reason given"
        else:
            self.namespaces.pop(name, None)
        if name == self.control_namespace:
            everything = annotations.get(HALT_ALL_ANNOTATION)
            self.everything = (everything or "no reason given") if everything is not None else None
        if (self.namespaces.get(name), self.everything) == before:
            return None
        log.warning("halt switch: namespace %s %s; cluster %s", name,
                    f"halted ({self.namespaces[name]})" if name in self.namespaces else "not halted",
                    f"halted ({self.everything})" if self.everything is not None else "not halted")
        return ALL if self.everything != before[1] else name

    def stop_for(self, namespace: str) -> EarlyStop | None:
        """Whether faults in `namespace` must end (or be refused) now, and why."""
        if self.everything is not None:
            return EarlyStop(HALTED, "ClusterHalted",
                             f"every fault in the cluster is halted: {self.everything} "
                             f"(annotation {HALT_ALL_ANNOTATION} on namespace {self.control_namespace})")
        if namespace in self.namespaces:
            return EarlyStop(HALTED, "NamespaceHalted",
                             f"namespace {namespace} is halted: {self.namespaces[namespace]} "
                             f"(annotation {HALT_ANNOTATION}; remove it to allow faults again)")
        return None
