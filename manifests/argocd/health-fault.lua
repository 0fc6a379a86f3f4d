-- Argo CD health check for agentops.dev/Fault
-- (argocd-cm key resource.customizations.health.agentops.dev_Fault).
--
-- A Fault's health is whether it does what its manifest asks, not how its target
-- feels (the Agent's own check says that):
--   not yet observed at this generation, Pending, Active without a target -> Progressing
--   Active (enforced: an injected fault doing its job), Expired (ran its whole
--     duration)                                                            -> Healthy
--   Halted (ended early by a person: the halt switch or a manual recover)  -> Suspended
--   Aborted (a stop condition tripped: the target got sicker than allowed),
--     Failed (never found a target, or an invalid spec)                    -> Degraded
-- kstatus' Reconciling/Stalled conditions win over the phase should the operator ever
-- write them on Faults.
--
-- Argo CD runs custom checks with Lua's base and table libraries only (no string
-- library), so this script uses nothing else.

local BY_PHASE = {
  Pending = "Progressing",
  Active = "Healthy",
  Expired = "Healthy",
  Halted = "Suspended",
  Aborted = "Degraded",
  Failed = "Degraded",
}

local status = obj.status
if status == nil or status.observedGeneration == nil or status.phase == nil then
  return {status = "Progressing", message = "Waiting for the operator to observe the fault"}
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
local function holds(kind)
  return conditions[kind] ~= nil and conditions[kind].status == "True"
end
if holds("Stalled") then
  return {status = "Degraded", message = (conditions.Stalled.reason or "Stalled") .. ": " .. (conditions.Stalled.message or "")}
end
if holds("Reconciling") then
  return {status = "Progressing", message = (conditions.Reconciling.reason or "Reconciling") .. ": " .. (conditions.Reconciling.message or "")}
end

local health = BY_PHASE[status.phase]
if health == nil then
  return {status = "Unknown", message = "Unknown phase " .. status.phase}
end
if status.phase == "Active" and not holds("Ready") then
  -- Its target is gone: the clock runs, nothing is hit until one returns.
  local ready = conditions.Ready or {}
  return {status = "Progressing", message = "Active without a target: " .. (ready.message or "")}
end
return {status = health, message = status.phase .. ": " .. (status.message or "")}
