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
  A claimer that routes (ARGV[4]) reads the due users; every claimer reads
  the users parked under the kinds it runs (ARGV[5], includes/parked). One
  that does not route (a server's remote workers of some kinds) reads
  nothing else: leases, retries and delayed tasks are the routers' to
  recover.

  KEYS[1]  due-users sorted set
  KEYS[2]  leases sorted set
  KEYS[3]  retries sorted set
  KEYS[4]  heads hash (user id -> head task id)
  KEYS[5]  delayed-tasks sorted set
  KEYS[6]  policies hash (user id -> plan or override)
  KEYS[7]  plans hash (plan name -> spec)
  KEYS[8]  parked-users sorted set (includes/parked)
  ARGV[1]  most due users to return (the caller's free slots), parked ones included
  ARGV[2]  most expired leases, most due retries and most due delayed tasks, to return
  ARGV[3]  the fallback policy spec (TOLLGATE_RATE_LIMITS)
  ARGV[4]  "1": the caller routes (claims due users, parks what it cannot
           run, recovers leases, retries and delayed tasks); "0": it claims
           parked users only
  ARGV[5]  the kinds the caller runs, comma-separated ("" is the empty kind
           and never parked)
  Returns  {now, next due, next retry or delayed moment, next lease expiry,
           n, user id, head task id (n pairs), k, user id, head task id
           (k pairs: parked users), m, lease member (m), r, retry
           member (r), d, delayed member (d), p, user id, policy spec, due
           moment (p triples: every user named above, once; the due moment
           in ms, -1 for a user not due)}: the next moments are ms, or -1
           when there is none (the retry moment is the earlier of the next
           retry and the next delayed task's moment; next due counts the
           caller's parked users; a caller that does not route gets -1
           for the other two); a member is "task id:user id".
]]
--- @include "time"
--- @include "schedule"
--- @include "window"
--- @include "policy"
--- @include "parked"

local now = currentMs()
local routes = ARGV[4] == '1'
local kinds = claimerKinds(ARGV[5], routes)

local out = {now, nextDueFor(KEYS[1], KEYS[8], kinds, routes), -1, -1}
if routes then
  out[3], out[4] = earliestOf(KEYS[3], KEYS[5]), earliest(KEYS[2])
end

-- Appends the users and their head task ids; returns the users.
local function withHeads(users)
  out[#out + 1] = #users
  if #users > 0 then
    local heads = redis.call('HMGET', KEYS[4], unpack(users))
    for i, userId in ipairs(users) do
      out[#out + 1] = userId
      out[#out + 1] = heads[i] or ''
    end
  end
  return users
end

local budget = tonumber(ARGV[1])
local users = {}
if routes and budget > 0 then
  users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, budget)
end
withHeads(users)
local parkedUsers, seen, parkedAt = {}, {}, {}
for _, userId in ipairs(users) do
  seen[userId] = true
end
for _, kind in ipairs(kinds) do
  for _, member in ipairs(dueParked(KEYS[8], kind, now, budget - #users - #parkedUsers)) do
    local userId = parkedUser(member)
    -- Due and parked both (put back in front since): the due entry claims it.
    if not seen[userId] then
      seen[userId] = true
      parkedUsers[#parkedUsers + 1] = userId
      parkedAt[userId] = parkedDue(member)
    end
  end
end
withHeads(parkedUsers)

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
for _, userId in ipairs(parkedUsers) do
  name(userId)
end
for _, set in ipairs({KEYS[2], KEYS[3], KEYS[5]}) do
  local members = {}
  if routes then
    members = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
  end
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
  out[#out + 1] = parkedAt[userId] or tonumber(redis.call('ZSCORE', KEYS[1], userId) or '-1')
end
return out
