--[[
  parked: users whose head task is of a kind the claimer that found it due
  cannot run (a kind run by remote workers, or by handler modules on other
  hosts). A claimer that routes (every server's own drainer) takes such a
  user out of the due users and parks it under the head's kind; claimers
  that run that kind claim parked users of their kinds, oldest first. One
  sorted set per partition holds them all, every score 0, so that a kind's
  users are one lexical range in due order: member "<kind> <due ms, 15
  digits> <user id>" (kinds hold no space; see core/validation). A hash
  names each parked user's member, so that a user is parked once (under the
  kind of its head when last routed) and its member found again. Whatever changed since a user was parked (its head
  cancelled, its queue paused or purged, another task put in front) is
  found by the claim that takes it, which sends the user back to the due
  users to be routed again.
]]
--- @include "schedule"

local function parkedMember(kind, due, userId)
  return kind .. ' ' .. string.format('%015.0f', due) .. ' ' .. userId
end

-- The due moment (ms) a parked member was parked with.
local function parkedDue(member)
  local from = string.find(member, ' ', 1, true)
  return tonumber(string.sub(member, from + 1, from + 15))
end

-- The user id of a parked member.
local function parkedUser(member)
  local from = string.find(member, ' ', 1, true)
  return string.sub(member, from + 17)
end

-- Takes the user out of the parked users; returns its member, or nil when it was not parked.
local function unpark(parked, parkedUsers, userId)
  local member = redis.call('HGET', parkedUsers, userId)
  if not member then
    return nil
  end
  redis.call('ZREM', parked, member)
  redis.call('HDEL', parkedUsers, userId)
  return member
end

-- Parks the user under `kind` at its due moment, in place of where it was
-- parked before (under its head of then: the latest routing is right).
local function park(parked, parkedUsers, userId, kind, due)
  unpark(parked, parkedUsers, userId)
  local member = parkedMember(kind, due, userId)
  redis.call('ZADD', parked, 0, member)
  redis.call('HSET', parkedUsers, userId, member)
end

-- Up to `limit` members parked under `kind` with a due moment at or before `now`, oldest first.
local function dueParked(parked, kind, now, limit)
  if limit <= 0 then
    return {}
  end
  return redis.call('ZRANGEBYLEX', parked, '[' .. kind .. ' ', '(' .. kind .. ' ' .. string.format('%015.0f', now + 1),
    'LIMIT', 0, limit)
end

-- The earliest due moment parked under any of `kinds`, or -1 when there is none.
local function earliestParked(parked, kinds)
  local first = -1
  for _, kind in ipairs(kinds) do
    local members = redis.call('ZRANGEBYLEX', parked, '[' .. kind .. ' ', '(' .. kind .. '!', 'LIMIT', 0, 1)
    if members[1] then
      local due = parkedDue(members[1])
      if first < 0 or due < first then
        first = due
      end
    end
  end
  return first
end

-- The claimer's kinds: ARGV's comma-separated list as a list and a set (a
-- claimer that routes runs the empty kind too; one that does not runs its
-- workers' kinds only). "*" runs every kind: the set answers true for any,
-- and the list is empty (nothing is parked for "*").
local function claimerKinds(list, routes)
  if list == '*' then
    return {}, setmetatable({}, {__index = function() return true end})
  end
  local kinds, runs = {}, {['']= routes}
  for kind in string.gmatch(list, '[^,]+') do
    kinds[#kinds + 1] = kind
    runs[kind] = true
  end
  return kinds, runs
end

-- The next moment a caller has a user to claim: the earliest parked under
-- its kinds and, for a caller that routes, the earliest due; -1 when none.
local function nextDueFor(dueUsers, parked, kinds, routes)
  local first = earliestParked(parked, kinds)
  if routes then
    local due = earliest(dueUsers)
    if first < 0 or (due >= 0 and due < first) then
      first = due
    end
  end
  return first
end

-- Its head changed outside a claim of the parked kind (cancelled, expired,
-- or a task put in front): a parked user goes back to the due users, due
-- now, to be routed again by its head of now, and the drainers are woken;
-- one whose queue emptied just leaves. (A user parked under a kind no
-- worker runs would otherwise wait for one even for tasks of others.)
local function rerouteIfParked(queue, parked, parkedUsers, dueUsers, userId, now, publish, wakeChannel)
  if unpark(parked, parkedUsers, userId) and redis.call('EXISTS', queue) == 1 then
    redis.call('ZADD', dueUsers, 'LT', now, userId)
    redis.call(publish, wakeChannel, now)
  end
end
