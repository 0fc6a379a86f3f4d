"""The operator's in-memory view of every Agent and Fault, and how they relate.

Records by key, the names per namespace (a Fault's targets are found among the
Agents of its namespace), and the reverse relation: which Faults are assigned to
each Agent, so that an agent's assignment set is built without a scan of all faults.
Pure bookkeeping: no I/O, no decisions.
"""

from __future__ import annotations

from agentops_operator.records import AgentRecord, FaultRecord
from agentops_operator.resources import Key


class ObjectIndex:
    def __init__(self) -> None:
        self.agents: dict[Key, AgentRecord] = {}
        self.faults: dict[Key, FaultRecord] = {}
        self._agents_in_ns: dict[str, set[str]] = {}
        self._faults_in_ns: dict[str, set[str]] = {}
        self._assigned_to_agent: dict[Key, set[Key]] = {}

    # ------------------------------------------------------------------ records

    def add_agent(self, rec: AgentRecord) -> None:
        self.agents[rec.ref.key] = rec
        self._agents_in_ns.setdefault(rec.ref.key.namespace, set()).add(rec.ref.key.name)

    def drop_agent(self, key: Key) -> AgentRecord | None:
        rec = self.agents.pop(key, None)
        if rec is not None:
            self._agents_in_ns.get(key.namespace, set()).discard(key.name)
            self._assigned_to_agent.pop(key, None)
        return rec

    def add_fault(self, rec: FaultRecord) -> None:
        self.faults[rec.ref.key] = rec
        self._faults_in_ns.setdefault(rec.ref.key.namespace, set()).add(rec.ref.key.name)

    def drop_fault(self, key: Key) -> set[Key]:
        """Forget a Fault; return the agents it was assigned to."""
        if key not in self.faults:
            return set()
        was_assigned = self.assign(key, ())
        del self.faults[key]
        self._faults_in_ns.get(key.namespace, set()).discard(key.name)
        return was_assigned

    # ------------------------------------------------------------------ relations

    def faults_in(self, namespace: str) -> list[Key]:
        return [Key(namespace, name) for name in self._faults_in_ns.get(namespace, ())]

    def namespaces_with_faults(self) -> list[str]:
        return list(self._faults_in_ns)

    def targets(self, rec: FaultRecord) -> list[str]:
        """The Agents a Fault's spec names or selects now, sorted (the spec must be readable)."""
        assert rec.spec is not None
        ns = rec.ref.key.namespace
        names = self._agents_in_ns.get(ns, set())
        if rec.spec.target_agent is not None:
            return [rec.spec.target_agent] if rec.spec.target_agent in names else []
        selector = rec.spec.target_selector
        assert selector is not None
        return sorted(n for n in names if selector.matches(self.agents[Key(ns, n)].labels))

    def assign(self, fault: Key, agents: tuple[str, ...]) -> set[Key]:
        """Record that `fault` is assigned to exactly `agents`; return every agent it was or is assigned to."""
        rec = self.faults.get(fault)
        before = rec.assigned_to if rec is not None else ()
        for name in set(before) - set(agents):
            self._assigned_to_agent.get(Key(fault.namespace, name), set()).discard(fault)
        for name in agents:
            self._assigned_to_agent.setdefault(Key(fault.namespace, name), set()).add(fault)
        if rec is not None:
            rec.assigned_to = agents
        return {Key(fault.namespace, n) for n in set(before) | set(agents)}

    def assigned_to(self, agent: Key) -> list[FaultRecord]:
        """The Faults assigned to an agent now."""
        keys = self._assigned_to_agent.get(agent, ())
        return [self.faults[k] for k in list(keys) if k in self.faults]
