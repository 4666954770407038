--[[
  claim-plan: the first half of a claim step in one partition, read only.
  A claim touches per-user keys (queue, stats, windows, dead letters) and
  task records, and a script must declare every key it touches (on a Redis
  Cluster only declared keys are routed); so this reads who needs the claim
  (due users with their head task, expired leases, due retries, delayed
  tasks whose moment has come), and claim-n
  then runs with their keys declared, checking that each is still so. A
  user's window counters depend on its policy (includes/policy), so the
  plan resolves the policy of every user it names.

  KEYS[1]  due-users sorted set
  KEYS[2]  leases sorted set
  KEYS[3]  retries sorted set
  KEYS[4]  heads hash (user id -> head task id)
  KEYS[5]  delayed-tasks sorted set
  KEYS[6]  policies hash (user id -> plan or override)
  KEYS[7]  plans hash (plan name -> spec)
  ARGV[1]  most due users to return (the caller's free slots)
  ARGV[2]  most expired leases, most due retries and most due delayed tasks, to return
  ARGV[3]  the fallback policy spec (TOLLGATE_RATE_LIMITS)
  Returns  {now, next due, next retry or delayed moment, next lease expiry,
           n, user id, head task id (n pairs), m, lease member (m), r, retry
           member (r), d, delayed member (d), p, user id, policy spec, due
           moment (p triples: every user named above, once; the due moment
           in ms, -1 for a user not due)}: the next moments are ms, or -1
           when there is none (the retry moment is the earlier of the next
           retry and the next delayed task's moment); a member is
           "task id:user id".
]]
--- @include "time"
--- @include "schedule"
--- @include "window"
--- @include "policy"

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

local named, order = {}, {}
local function name(userId)
  if not named[userId] then
    named[userId] = true
    order[#order + 1] = userId
  end
end
for _, userId in ipairs(users) do
  name(userId)
end
for _, set in ipairs({KEYS[2], KEYS[3], KEYS[5]}) do
  local members = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
  out[#out + 1] = #members
  for _, member in ipairs(members) do
    out[#out + 1] = member
    -- Task ids hold no ':', so the user id follows the first one.
    name(string.sub(member, string.find(member, ':', 1, true) + 1))
  end
end
out[#out + 1] = #order
for _, userId in ipairs(order) do
  out[#out + 1] = userId
  out[#out + 1] = resolvePolicy(KEYS[6], KEYS[7], userId, ARGV[3]).spec
  -- For the global limit's order (global-reserve-n): who has waited longest.
  out[#out + 1] = tonumber(redis.call('ZSCORE', KEYS[1], userId) or '-1')
end
return out
