"""AgentOps: Kubernetes-native operations for AI agents.

The distribution is split into import packages named after the top-level folders:
`agentops_operator` (operator/), `agentops_sidecar` (sidecar/), `agentops_agents`
(agents/) and `agentops_ui` (ui/). This package holds what they share: the wire
contracts between sidecar and operator, duration parsing, errors and the CLI.
"""

__version__ = "0.1.0"

GROUP = "agentops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
