--[[
  admit-outcome: what became of a task whose admit reply was lost (the client
  gave up waiting, or the connection dropped with the script sent). Read only.
  Sent on admit's connection after it, so Redis answers it only after the
  admit script ran, if it ran at all.

  KEYS[1]   task hash of the task admit was given
  KEYS[2]   queue list of its user
  KEYS[3..] one rate-limiter-flexible counter per window, in policy order
  ARGV[1]   task id
  Returns   {state, attempts, adm, started ms, position, now ms, count 1, pttl 1, ...}
            state is the record's FIELD_STATE, '' when there is no record (admit
            stored nothing); adm is 1 when admit itself started the task (FIELD_STARTED_BY_ADMIT);
            started is -1 when it never started; position is the task's
            1-based place in the queue, 0 when it is not there. pttl is -2
            where no window is open.
]]
--- @include "time"
--- @include "window"
--- @include "task-fields"

local now = currentMs()
local fields = redis.call('HMGET', KEYS[1], FIELD_STATE, FIELD_ATTEMPTS, FIELD_STARTED_BY_ADMIT, FIELD_STARTED)
local state = fields[1] or ''
local position = 0
if state == STATE_QUEUED then
  local index = redis.call('LPOS', KEYS[2], ARGV[1])
  if index then
    position = index + 1
  end
end
local out = {state, tonumber(fields[2] or '0'), tonumber(fields[3] or '0'), tonumber(fields[4] or '-1'), position, now}
return appendWindows(out, 3)
