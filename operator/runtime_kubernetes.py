"""Restart an agent that runs as a Kubernetes Deployment, as `kubectl rollout restart` does.

`kubectl rollout restart` sets the pod template annotation
`kubectl.kubernetes.io/restartedAt` to the current time; the Deployment controller
sees a new template and rolls the pods with the Deployment's own strategy
(maxUnavailable, PodDisruptionBudgets respected). We make the same change, plus our
token in `agentops.dev/restart-token`, in one strategic-merge patch: one restart
decision changes the template exactly once, and a retried call that finds its token
already there does nothing.

Blocking (pykube-ng); the healing loop calls it from a worker thread.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from agentops.times import format_time

from agentops_operator.kube_client import KubeClient, KubeError
from agentops_operator.resources import ObjectRef, RuntimeSpec
from agentops_operator.runtimes import RestartOutcome

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
TOKEN_ANNOTATION = "agentops.dev/restart-token"
# On the Deployment when the operator scaled a runaway agent to zero: the decision's
# token, and the replica count to scale back to.
SCALED_TO_ZERO_ANNOTATION = "agentops.dev/scaled-to-zero"
REPLICAS_BEFORE_ANNOTATION = "agentops.dev/replicas-before-scale-to-zero"


class KubernetesRuntime:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def restart(self, agent: ObjectRef, runtime: RuntimeSpec, token: str) -> RestartOutcome:
        name, namespace = runtime.deployment, agent.key.namespace
        where = f"Deployment {namespace}/{name}"
        path = dict(version="apps/v1", namespace=namespace, url=f"deployments/{name}")
        try:
            current = self.kube.call("GET", **path)
            annotations = ((current.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
            if annotations.get(TOKEN_ANNOTATION) == token:
                return RestartOutcome.done(f"{where} already carries this restart", detail=annotations.get(RESTARTED_AT))
            stamp = format_time(datetime.now(timezone.utc))
            patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp, TOKEN_ANNOTATION: token}}}}}
            self.kube.call("PATCH", **path, data=json.dumps(patch),
                           headers={"Content-Type": "application/strategic-merge-patch+json"})
        except KubeError as exc:
            return _failed(exc, where, "restarting", retryable=exc.retryable)
        return RestartOutcome.done(f"rolling restart of {where} started", detail=stamp)

    def scale_to_zero(self, agent: ObjectRef, runtime: RuntimeSpec, token: str) -> RestartOutcome:
        """Scale the Deployment to zero replicas, as `kubectl scale --replicas=0` does.

        The replica count it had is kept in an annotation on the Deployment, so the
        human who scales it up again knows to what; the token makes a retried call a
        no-op. (A HorizontalPodAutoscaler on the Deployment would scale it back up: the
        Event and the Stalled message say so.)"""
        name, namespace = runtime.deployment, agent.key.namespace
        where = f"Deployment {namespace}/{name}"
        path = dict(version="apps/v1", namespace=namespace, url=f"deployments/{name}")
        try:
            current = self.kube.call("GET", **path)
            annotations = (current.get("metadata") or {}).get("annotations") or {}
            if annotations.get(SCALED_TO_ZERO_ANNOTATION) == token:
                return RestartOutcome.done(f"scaled {where} to zero replicas")
            before = (current.get("spec") or {}).get("replicas", 1)
            patch = {"metadata": {"annotations": {SCALED_TO_ZERO_ANNOTATION: token, REPLICAS_BEFORE_ANNOTATION: str(before)}},
                     "spec": {"replicas": 0}}
            self.kube.call("PATCH", **path, data=json.dumps(patch),
                           headers={"Content-Type": "application/strategic-merge-patch+json"})
        except KubeError as exc:
            # Not retried: a runaway agent is left to a human at once either way.
            return _failed(exc, where, "scaling to zero", retryable=False)
        return RestartOutcome.done(f"scaled {where} to zero replicas (it had {before}; kept in {REPLICAS_BEFORE_ANNOTATION})")


def _failed(exc: KubeError, where: str, doing: str, *, retryable: bool) -> RestartOutcome:
    if exc.status == 404:
        return RestartOutcome.failed("DeploymentNotFound", f"{where} does not exist (spec.runtime.deployment.name)", retryable=False)
    if exc.status == 403:
        return RestartOutcome.failed("DeploymentForbidden",
                                     f"the operator may not get/patch {where}: {exc} (grant get and patch on deployments.apps)",
                                     retryable=False)
    return RestartOutcome.failed("KubernetesApiError", f"{doing} {where} failed: {exc}", retryable=retryable)
