-- Argo CD health of a DropletPool (mcp.agentopia.io/v1alpha1), from its kstatus conditions.
-- Degraded: Stalled=True, or LimitReached=True (a limit blocks provisioning, so deployments wait).
-- Healthy: Ready=True for the current generation. Progressing: anything else.
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
local limit = find(status.conditions, "LimitReached")
local ready = find(status.conditions, "Ready")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = explain(stalled, "Stalled")
  return hs
end
if limit ~= nil and limit.status == "True" then
  hs.status = "Degraded"
  hs.message = explain(limit, "LimitReached")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = (status.droplets or 0) .. " droplet(s), " .. string.format("$%.2f", status.monthlyCostUSD or 0) .. " a month"
  return hs
end

hs.status = "Progressing"
hs.message = explain(find(status.conditions, "Reconciling") or ready, "Waiting for the pool to become ready")
return hs
