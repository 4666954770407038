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
            state is the record's s field, '' when there is no record (admit
            stored nothing); adm is 1 when admit itself started the task;
            started is -1 when it never started; position is the task's
            1-based place in the queue, 0 when it is not there. pttl is -2
            where no window is open.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local fields = redis.call('HMGET', KEYS[1], 's', 'a', 'adm', 'st')
local state = fields[1] or ''
local position = 0
if state == 'q' then
  local index = redis.call('LPOS', KEYS[2], ARGV[1])
  if index then
    position = index + 1
  end
end
local out = {state, tonumber(fields[2] or '0'), tonumber(fields[3] or '0'), tonumber(fields[4] or '-1'), position, now}
for i = 3, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  local pttl = -2
  if count > 0 then
    pttl = redis.call('PTTL', KEYS[i])
  end
  out[#out + 1] = count
  out[#out + 1] = pttl
end
return out
