-- Argo CD health check for Syncline's Source, Model, Destination, Sync and Sequence (syncline.io/v1alpha1).
-- One script for the five kinds; argocd-cm.yaml installs it under each kind's key.
-- Written for gopher-lua (Lua 5.1) inside Argo CD's sandbox: no os, io or goto.
--
-- Reads the kstatus conditions the operator writes: Stalled=True is Degraded, Reconciling=True is
-- Progressing, Ready=True is Healthy, Ready=False is Degraded. Status that was written for an older
-- .metadata.generation is Progressing (the operator has not looked at the latest spec yet), and a
-- Sync or Sequence with spec.paused is Suspended.
local hs = {}

local function findCondition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local reason = condition.reason or ""
  local message = condition.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= "" then
    return message
  end
  return reason
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

local function stale(observed)
  return generation ~= nil and observed ~= nil and observed < generation
end

if (obj.kind == "Sync" or obj.kind == "Sequence") and obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "The " .. obj.kind .. " is paused: set spec.paused to false to resume"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Syncline operator to report status"
  return hs
end

if stale(status.observedGeneration) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Syncline operator to observe generation " .. generation
  return hs
end

local ready = findCondition(status.conditions, "Ready")
local stalled = findCondition(status.conditions, "Stalled")
local reconciling = findCondition(status.conditions, "Reconciling")
local running = findCondition(status.conditions, "Running")

-- Conditions are set together; one from an older generation means the rest may be stale too.
for _, condition in ipairs({ ready, stalled, reconciling }) do
  if condition ~= nil and stale(condition.observedGeneration) then
    hs.status = "Progressing"
    hs.message = "Waiting for the Syncline operator to observe generation " .. generation
    return hs
  end
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  if ready ~= nil then
    hs.message = describe(ready)
  else
    hs.message = "Waiting for the Ready condition"
  end
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  if running ~= nil and running.status == "True" then
    hs.message = hs.message .. " (" .. describe(running) .. ")"
  end
  return hs
end

hs.status = "Degraded"
hs.message = describe(ready)
return hs
