-- Argo CD health check for kubetune.io/FineTuneJob.
--
-- Installed as `resource.customizations.health.kubetune.io_FineTuneJob` in argocd-cm
-- (see docs/argocd.md). Argo CD runs it with gopher-lua (Lua 5.1 semantics) and the
-- object in the global `obj`; it must return a table with `status` (Healthy,
-- Progressing, Degraded, Suspended) and `message`.
--
-- Why conditions and not only status.state: conditions are what the operator writes
-- (metav1.Condition, each with observedGeneration); state is a summary derived from
-- them. The summary is used only when an older operator wrote no conditions.
--
-- Argo CD opens only the base, table, package and a "safe os" library for health
-- scripts: no `string` and no `math`. So no string.format, :sub or math.floor here;
-- numbers are shown with tostring only, and only integers (which print the same in
-- gopher-lua and PUC Lua 5.1).
--
-- A FineTuneJob is a bounded job, so "Healthy" means "finished successfully" and every
-- live phase (waiting for the operator, accepted, queued, running) is "Progressing".
-- Argo CD therefore keeps a sync with waves or hooks waiting until training finished.
--
-- A job with spec.evaluation whose gate failed (or whose evaluation failed) ends
-- Succeeded with EvaluationPassed=False: its training worked but the adapter must not be
-- promoted, so it is "Degraded", which stops later sync waves from deploying it.

local hs = {}

local function condition(conditions, wanted)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- "Reason: message", or whichever of the two is set.
local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= "" then
    return message
  end
  if reason ~= "" then
    return reason
  end
  return fallback
end

local function progress_text(status)
  local p = status.progress
  if p == nil or p.step == nil then
    return "training started"
  end
  local text = "step " .. tostring(p.step)
  if p.totalSteps ~= nil then
    text = text .. "/" .. tostring(p.totalSteps)
  end
  if p.percent ~= nil then
    text = text .. " (" .. tostring(p.percent) .. "%)"
  end
  return text
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubetune operator to accept the job"
  return hs
end

-- A spec change the operator has not seen yet: the rest of the status is about the old
-- spec, so report neither success nor failure for it.
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubetune operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions
local accepted = condition(conditions, "Accepted")
local failed = condition(conditions, "Failed")
local succeeded = condition(conditions, "Succeeded")
local suspended = condition(conditions, "Suspended")
local queued = condition(conditions, "Queued")
local running = condition(conditions, "Running")
local evaluation = condition(conditions, "EvaluationPassed")

if is_true(failed) then
  hs.status = "Degraded"
  hs.message = describe(failed, "Training failed")
  return hs
end
if accepted ~= nil and accepted.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(accepted, "The job was not accepted")
  return hs
end
if is_true(succeeded) and evaluation ~= nil and evaluation.status == "False" then
  hs.status = "Degraded"
  hs.message = "Trained, but the evaluation did not pass: "
    .. describe(evaluation, "EvaluationPassed is False")
  return hs
end
if is_true(succeeded) then
  hs.status = "Healthy"
  hs.message = describe(succeeded, "Training succeeded")
  return hs
end
if is_true(suspended) then
  hs.status = "Suspended"
  hs.message = describe(suspended, "The job is suspended")
  return hs
end
if is_true(running) then
  hs.status = "Progressing"
  hs.message = "Running: " .. progress_text(status)
  return hs
end
if is_true(queued) then
  hs.status = "Progressing"
  hs.message = "Queued: " .. describe(queued, "waiting for quota")
  return hs
end
-- Accepted, neither queued nor running yet: the Running condition says what happens
-- meanwhile (Starting, Pending, or a container that cannot start, e.g. ErrImagePull).
if is_true(accepted) and running ~= nil and (running.reason or "") ~= "" then
  hs.status = "Progressing"
  hs.message = describe(running, "starting")
  return hs
end

-- No decisive condition: fall back to the summary an operator may have written alone.
local state = status.state
if state == "Failed" or state == "Invalid" then
  hs.status = "Degraded"
  hs.message = "The job is " .. state
elseif state == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Training succeeded"
elseif state == "Suspended" then
  hs.status = "Suspended"
  hs.message = "The job is suspended"
elseif is_true(accepted) then
  hs.status = "Progressing"
  hs.message = describe(accepted, "Accepted; creating the training job")
else
  hs.status = "Progressing"
  hs.message = "Waiting for the kubetune operator (state " .. tostring(state or "unknown") .. ")"
end
return hs
