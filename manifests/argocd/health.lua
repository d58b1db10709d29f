-- Argo CD health check for hourglass.dev TimeoutProfile and SessionPolicy.
-- Reads the kstatus conditions the operator writes: Healthy once the spec is
-- rendered (Ready) and every agent pod runs it (Applied); Progressing while the
-- operator or the pods catch up; Degraded when a spec is invalid or a pod rejects
-- the config (Stalled).
local hs = {}
local generation = obj.metadata and obj.metadata.generation or nil
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Hourglass operator"
  return hs
end
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local conditions = {}
for _, condition in ipairs(obj.status.conditions) do
  conditions[condition.type] = condition
end
local function message(condition)
  return (condition.reason or "") .. ": " .. (condition.message or "")
end
local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(stalled)
  return hs
end
local valid = conditions["Valid"]
if valid ~= nil and valid.status == "False" then
  hs.status = "Degraded"
  hs.message = message(valid)
  return hs
end
local applied = conditions["Applied"]
if applied ~= nil and applied.status == "False" and applied.reason == "Rejected" then
  hs.status = "Degraded"
  hs.message = message(applied)
  return hs
end
local ready = conditions["Ready"]
if ready == nil or ready.status ~= "True" then
  hs.status = "Progressing"
  hs.message = ready ~= nil and message(ready) or "Waiting for the config to render"
  return hs
end
local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = message(reconciling)
  return hs
end
if applied ~= nil and applied.status ~= "True" then
  hs.status = "Progressing"
  hs.message = message(applied)
  return hs
end
hs.status = "Healthy"
hs.message = applied ~= nil and applied.message or ready.message
return hs
