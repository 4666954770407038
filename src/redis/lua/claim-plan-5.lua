--[[
  claim-plan: the first half of a claim step in one partition, read only.
  A claim touches per-user keys (queue, stats, windows, dead letters) and
  task records, and a script must declare every key it touches (on a Redis
  Cluster only declared keys are routed); so this reads who needs the claim
  (due users with their head task, expired leases, due retries, delayed
  tasks whose moment has come), and claim-n
  then runs with their keys declared, checking that each is still so.

  KEYS[1]  due-users sorted set
  KEYS[2]  leases sorted set
  KEYS[3]  retries sorted set
  KEYS[4]  heads hash (user id -> head task id)
  KEYS[5]  delayed-tasks sorted set
  ARGV[1]  most due users to return (the caller's free slots)
  ARGV[2]  most expired leases, most due retries and most due delayed tasks, to return
  Returns  {now, next due, next retry or delayed moment, next lease expiry,
           n, user id, head task id (n pairs), m, lease member (m), r, retry
           member (r), d, delayed member (d)}: the next moments are ms, or -1
           when there is none (the retry moment is the earlier of the next
           retry and the next delayed task's moment); a member is
           "task id:user id".
]]
--- @include "time"
--- @include "schedule"

local now = currentMs()

local out = {now, earliest(KEYS[1]), earliestOf(KEYS[3], KEYS[5]), earliest(KEYS[2])}

local users = {}
if tonumber(ARGV[1]) > 0 then
  users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
end
out[#out + 1] = #users
if #users > 0 then
  local heads = redis.call('HMGET', KEYS[4], unpack(users))
  for i, userId in ipairs(users) do
    out[#out + 1] = userId
    out[#out + 1] = heads[i] or ''
  end
end

for _, set in ipairs({KEYS[2], KEYS[3], KEYS[5]}) do
  local members = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
  out[#out + 1] = #members
  for _, member in ipairs(members) do
    out[#out + 1] = member
  end
end
return out
