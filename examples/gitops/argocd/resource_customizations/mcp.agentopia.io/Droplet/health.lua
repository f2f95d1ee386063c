-- Argo CD health of a Droplet (mcp.agentopia.io/v1alpha1), from its kstatus conditions and phase.
-- Degraded: Stalled=True, phase Failed, or phase NotReady (the agent stopped answering).
-- Healthy: Ready=True for the current generation. Progressing: provisioning, booting, enrolling,
-- draining, or no status yet.
local hs = {}

local function find(conditions, type_)
  if conditions == nil then return nil end
  for _, c in ipairs(conditions) do
    if c.type == type_ then return c end
  end
  return nil
end

local function explain(c, fallback)
  if c == nil then return fallback end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then return reason .. ": " .. message end
  if reason ~= "" then return reason end
  if message ~= "" then return message end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local stalled = find(status.conditions, "Stalled")
local ready = find(status.conditions, "Ready")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = explain(stalled, "Stalled")
  return hs
end
if status.phase == "Failed" or status.phase == "NotReady" then
  hs.status = "Degraded"
  hs.message = status.phase .. ": " .. explain(ready, "see the conditions")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  local text = "Ready"
  if status.size ~= nil and status.region ~= nil then
    text = text .. ": " .. status.size .. " in " .. status.region
  end
  if status.allocationSummary ~= nil and status.allocationSummary ~= "" then
    text = text .. ", " .. status.allocationSummary
  end
  hs.message = text
  return hs
end

hs.status = "Progressing"
hs.message = (status.phase or "Pending") .. ": " .. explain(find(status.conditions, "Reconciling") or ready, "in progress")
return hs
