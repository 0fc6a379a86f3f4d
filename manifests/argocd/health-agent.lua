-- Argo CD health check for agentops.dev/Agent
-- (argocd-cm key resource.customizations.health.agentops.dev_Agent).
--
-- The same reading as kstatus, then the Agent's own phase: the operator has not seen
-- this generation yet, or a restart is under way (Reconciling) -> Progressing; healing
-- gave up (Stalled) -> Degraded; then Healthy only when the operator says Ready=True.
-- A Degraded phase (latency or errors past the spec's "degraded" thresholds) is
-- Degraded here too: Ready is False, the agent serves worse than its spec allows, and
-- Argo CD has no warning level between Healthy and Degraded. Unknown (no telemetry
-- yet, telemetry stale, or an instance still within its startup grace) is
-- Progressing: health will be known once reports arrive and probes pass.
--
-- Argo CD runs custom checks with Lua's base and table libraries only (no string
-- library), so this script uses nothing else.

local function explain(c)
  if c.message == nil or c.message == "" then
    return c.reason or ""
  end
  return (c.reason or "") .. ": " .. c.message
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  return {status = "Progressing", message = "Waiting for the operator to observe the agent"}
end
local generation = obj.metadata.generation or 0
if status.observedGeneration < generation then
  return {status = "Progressing",
          message = "Waiting for the operator to observe generation " .. generation ..
                    " (observed " .. status.observedGeneration .. ")"}
end
local conditions = {}
for _, c in ipairs(status.conditions or {}) do
  conditions[c.type] = c
end

if conditions.Stalled ~= nil and conditions.Stalled.status == "True" then
  return {status = "Degraded", message = "Healing escalated: " .. explain(conditions.Stalled)}
end
if conditions.Reconciling ~= nil and conditions.Reconciling.status == "True" then
  return {status = "Progressing", message = "Restart in progress: " .. explain(conditions.Reconciling)}
end
local ready = conditions.Ready or {reason = "NoReadyCondition"}
if status.phase == "Healthy" and ready.status == "True" then
  return {status = "Healthy", message = explain(ready)}
end
if status.phase == "Unhealthy" or status.phase == "Degraded" then
  return {status = "Degraded", message = status.phase .. ": " .. explain(ready)}
end
if status.phase == nil or status.phase == "Unknown" then
  return {status = "Progressing", message = "Health not known yet: " .. explain(ready)}
end
return {status = "Progressing", message = "Not Ready yet (" .. status.phase .. "): " .. explain(ready)}
