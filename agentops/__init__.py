"""AgentOps: Kubernetes-native operations for AI agents.

The distribution is split into import packages named after the top-level folders:
`agentops_operator` (operator/), `agentops_sidecar` (sidecar/), `agentops_agents`
(agents/) and `agentops_ui` (ui/). This package holds what they share: the wire
contracts between sidecar and operator, the resources' types (`api_types`), times and
durations, label selectors, backoff, errors and the CLI.

Glossary — each word has one meaning in code, status, metrics, logs and docs:

* **assigned** — the operator decided that an agent's sidecars must enforce a fault
  now: it is in the agent's assignment set (`Fault.status.targets`,
  `Agent.status.activeFaults`, reason `FaultsAssigned`, `agentops_assignment_*`).
* **enforce** — what a sidecar does with the faults assigned to it: it perturbs
  requests with them (`/v1/state`'s `enforced`, `agentops_sidecar_faults_enforced`).
  It stops on its own at a fault's `expiresAt` or when the operator lease runs out.
* **applied** — a sidecar reported that it enforced the fault in its last window
  (`TelemetryReport.appliedFaults`, `activeFaults[].applied`, reason `FaultsApplied`).
* **cured** — an agent a restart cured of a Crash fault: no longer assigned it
  (`Fault.status.curedTargets`).
* **restart request** — an ask for one restart: the `agentops.dev/restart` annotation
  (its value is opaque; a new value asks again) or the healing policy.
* **restart token** — the opaque id of one restart (`status.healing.restartToken`); a
  supervising sidecar restarts its process when the token it is handed changes.
* **restart ledger** — the start times of the automatic restarts inside the budget
  window (`status.healing.restarts`); the **restart budget** (`spec.healing.budget`)
  bounds its length.
* **restart count** — every restart begun, automatic or requested
  (`status.restartCount`, `agentops_restarts_total{result="Started"}`).
* **restart runner** — the operator part that performs restarts against a runtime
  (`RestartRunner`): a Deployment rollout, a new Cloud Run revision.
* **restart slot** — one of the cluster-wide concurrent restarts
  (`--max-concurrent-restarts`, `agentops_restart_slots_in_use`).
"""

__version__ = "0.1.0"

GROUP = "agentops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
