-- Argo CD health of an MCPDeployment (mcp.agentopia.io/v1alpha1), from its kstatus conditions.
-- Degraded: Stalled=True (needs a person) or phase Failed. Healthy: Ready=True for the current
-- generation. Progressing: anything else (no status yet, an unobserved spec change, deploying).
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
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = explain(ready, "Failed")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  local where = ""
  if status.placement ~= nil and status.placement.droplet ~= nil then
    where = " on droplet " .. status.placement.droplet
  end
  hs.message = "Ready at " .. (status.endpoint or "(no endpoint yet)") .. where
  return hs
end

hs.status = "Progressing"
local step = status.phase or "Pending"
if status.progress ~= nil and status.progress.percent ~= nil then
  step = step .. " (" .. status.progress.percent .. "%)"
end
hs.message = step .. ": " .. explain(find(status.conditions, "Reconciling") or ready, "in progress")
return hs
