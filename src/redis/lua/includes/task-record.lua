--[[
  task-record: a new task's record (its fields: TASK_FIELD in src/redis/keys.ts).
]]
--- @include "task-fields"

-- Stores a submitted task: queued (or delayed), or, when started, running
-- on its first attempt and marked as started by admit. extras: startBy (ms,
-- or ''), priority (a number, stored only above 0: includes/priority) and
-- traceparent (the Submit span's W3C traceparent, or '').
local function storeTask(task, userId, payload, kind, now, started, extras)
  local fields = {FIELD_USER, userId, FIELD_PAYLOAD, payload, FIELD_SUBMITTED, now}
  local extra
  if started then
    extra = {FIELD_STATE, STATE_RUNNING, FIELD_ATTEMPTS, 1, FIELD_STARTED, now, FIELD_STARTED_BY_ADMIT, 1}
  else
    extra = {FIELD_STATE, STATE_QUEUED, FIELD_ATTEMPTS, 0}
  end
  for _, value in ipairs(extra) do
    fields[#fields + 1] = value
  end
  if extras.startBy ~= '' then
    fields[#fields + 1] = FIELD_START_BY
    fields[#fields + 1] = extras.startBy
  end
  if extras.priority > 0 then
    fields[#fields + 1] = FIELD_PRIORITY
    fields[#fields + 1] = extras.priority
  end
  if extras.traceparent ~= '' then
    fields[#fields + 1] = FIELD_TRACEPARENT
    fields[#fields + 1] = extras.traceparent
  end
  if kind ~= '' then
    fields[#fields + 1] = FIELD_KIND
    fields[#fields + 1] = kind
  end
  redis.call('HSET', task, unpack(fields))
end
