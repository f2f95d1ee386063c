-- Argo CD health of an MCPTemplate (mcp.agentopia.io/v1alpha1): Healthy when Accepted, Degraded
-- when Rejected (the Ready condition says why), Progressing until the operator has validated the
-- current generation.
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
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to validate the template"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to validate generation " .. generation
  return hs
end

local ready = find(status.conditions, "Ready")
if status.phase == "Rejected" then
  hs.status = "Degraded"
  hs.message = "Rejected: " .. explain(ready, "see the conditions")
  return hs
end
hs.status = "Healthy"
hs.message = "Accepted: " .. (obj.spec.image or "")
return hs
