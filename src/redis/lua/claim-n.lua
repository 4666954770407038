--[[
  claim: one drainer step in one partition, atomic, so two processes or
  hosts can never claim the same task or overrun a window between them. The
  caller read who needs it with claim-plan-7 and declares their keys here;
  anything that changed since (another process claimed it, a lease was
  renewed) is left alone, and the next step sees it.

  1. Tasks whose lease has expired (their process died or stalled) go back to
     the head of their user's queue, or to its dead-letter list when they have
     used every attempt, or end cancelled when their cancel was requested
     (counted in the user's and the totals' c, includes/cancelled).
  2. Tasks whose retry backoff is over go back to the head of their queue.
     Delayed tasks whose moment (not_before) has come join the back of
     theirs (KEYS[8]); one that finds its queue empty is its head and the
     user is due now. One past its start_by ends expired instead. Each
     takes its place by priority (includes/priority): one going back ahead
     of the rest of its level, a delayed one behind it.
  3. Up to ARGV[1] due users and parked users (includes/parked), in the order given (earliest due first, so
     users are served round-robin when slots are scarce), each have their
     head task claimed if every window of the user's effective policy
     (includes/policy, resolved here) has room for the task's cost and the
     user runs fewer tasks than the policy's max running: the cost is
     used in each window with rate-limiter-flexible's semantics
     (includes/window), the task
     is marked running under a lease, and the user is rescheduled for when
     its next task may start. A user whose windows are full is moved to when
     they will have room; one held by its cap, to a lease from now (finish
     makes it due when a task of it ends). A user whose declared counters
     no longer cover its policy (it changed since the plan) is left as it
     is, for the next step. A due user whose queue is paused (KEYS[7]) is
     taken out of the due users instead ("parked": ResumeQueue schedules it
     again), whatever put it back there (a release, a recovered lease, a
     retry coming due in step 1 or 2, a requeue), and nothing of it starts.
     A head task never started whose start_by has passed ends expired
     instead of starting (includes/expired); the next task takes its place
     and is claimed by the next step (its record was not declared).
     A due head task of a kind the caller does not run (ARGV[14]) is not
     claimed: its user is parked under that kind (includes/parked) and the
     drainers are woken for it ("<moment> <kind>" on the wake channel). A
     parked user is claimed like a due one by a caller that runs its kind;
     one whose head changed since it was parked, or whose windows are full,
     goes back to the due users (and is routed again), one paused or with
     an empty queue leaves.
  Every user whose counts change is published on the progress channel, and
  its stats hash kept or set to expire (includes/user-stats).
  Each claimed task is marked with the caller's claim id, and the claim is
  recorded under that id for a short while: a caller whose client gave up
  waiting for the reply (a command timeout while Redis was busy) reads it back
  and hands the tasks back instead of leaving them to wait out their leases.

  KEYS[1]  due-users sorted set
  KEYS[2]  leases sorted set
  KEYS[3]  retries sorted set
  KEYS[4]  totals hash
  KEYS[5]  heads hash (user id -> head task id)
  KEYS[6]  this claim's record (list: task id, user id, attempt per claimed task)
  KEYS[7]  paused-users set
  KEYS[8]  delayed-tasks sorted set
  KEYS[9]  policies hash (user id -> plan or override)
  KEYS[10] plans hash (plan name -> spec)
  KEYS[11] parked-users sorted set (includes/parked)
  KEYS[12] parked-users hash (user id -> its member there)
  then per user (U of them, ARGV order): queue list, stats hash,
           dead-letter list, and its W rate-limiter-flexible counters
           (W and their durations in ARGV)
  then per item (T of them, ARGV order): the task's hash, where it has one
  ARGV[1]  most tasks to claim (free slots of the caller)
  ARGV[2]  lease length, ms
  ARGV[3]  most attempts per task
  ARGV[4]  dead-letter list cap
  ARGV[5]  progress channel
  ARGV[6]  "SPUBLISH" on a Redis Cluster (sharded pub/sub), else "PUBLISH"
  ARGV[7]  claim id, stored on each claimed task hash (FIELD_CLAIM)
  ARGV[8]  how long the claim's record is kept, ms
  ARGV[9]  retention, seconds: how long a user's stats hash is kept once
           nothing of the user runs or waits to retry, and a cancelled task's record
  ARGV[10] dead-letter retention, seconds
  ARGV[11] the fallback policy spec (TOLLGATE_RATE_LIMITS)
  ARGV[12] the wake channel (a parked user's moment and kind are published)
  ARGV[13] "1": the caller routes (parks a due user whose head it cannot
           run); "0": it claims parked users only
  ARGV[14] the kinds the caller runs, comma-separated
  then U, and per user: user id, W, and the duration (seconds) of each of
           its W declared window counters
  then T, and per item: kind ("lease", "retry", "delayed", "head" or "parked"), task id ("" for a
           head the plan did not find), user number (1 … U), task key number
           in KEYS (0 when none)
  Returns  {now, next due, next retry or delayed moment, next lease expiry,
           dead-lettered, expired, cancelled, n, user id (n), claims...}: the
           next moments are ms, or -1 when there is none; dead-lettered counts
           the tasks whose lease ran out on their last attempt, expired
           those that ended expired here, cancelled those whose lease ran
           out after their cancel was requested;
           the n users' dead-letter lists are over their cap (the caller
           trims them, see includes/dead-letter); each claim is eight entries:
           task id, user id, kind, payload, attempt, due moment, traceparent
           and submit moment (both "" for a task submitted without tracing).
]]
--- @include "time"
--- @include "schedule"
--- @include "window"
--- @include "policy"
--- @include "dead-letter"
--- @include "user-stats"
--- @include "task-fields"
--- @include "heads"
--- @include "cancelled"
--- @include "expired"
--- @include "priority"
--- @include "parked"

local now = currentMs()
local maxClaims = tonumber(ARGV[1])
local leaseMs = tonumber(ARGV[2])
local maxAttempts = tonumber(ARGV[3])
local deadCap = ARGV[4]
local progress, PUBLISH = ARGV[5], ARGV[6]
local claimId, recordMs = ARGV[7], tonumber(ARGV[8])
local retention, deadRetention = ARGV[9], ARGV[10]
local wakeChannel, routes = ARGV[12], ARGV[13] == '1'
local kinds, runs = claimerKinds(ARGV[14], routes)
local users = {}
local userCount = tonumber(ARGV[15])
local at = 16
local base = 12
for u = 1, userCount do
  local windowCount = tonumber(ARGV[at + 1])
  local user = {id = ARGV[at], queue = KEYS[base + 1], stats = KEYS[base + 2], dead = KEYS[base + 3]}
  user.policy = resolvePolicy(KEYS[9], KEYS[10], user.id, ARGV[11])
  -- Its counters do not cover its policy (changed since the plan): it starts nothing in this step.
  user.bound = bindWindows(user.policy, declaredWindows(base + 4, at + 2, windowCount))
  users[u] = user
  base = base + 3 + windowCount
  at = at + 2 + windowCount
end
local items = {}
local itemCount = tonumber(ARGV[at])
at = at + 1
for i = 1, itemCount do
  local keyIndex = tonumber(ARGV[at + 3])
  items[i] = {kind = ARGV[at], taskId = ARGV[at + 1], user = users[tonumber(ARGV[at + 2])], task = keyIndex > 0 and KEYS[keyIndex] or nil}
  at = at + 4
end

-- Changes one of the user's counters; its hash is settled at the end.
local function changeStats(user, field, by)
  statsAdd(user.stats, field, by, now)
  user.counted = true
end

-- Users whose dead-letter list went over its cap, for the reply.
local overCap = {}
-- Tasks dead-lettered here (lease lost on the last attempt), for the reply.
local deadLettered = 0
-- Tasks ended expired here (not started by their start_by), for the reply.
local expired = 0
-- Tasks ended cancelled here (lease lost after their cancel was requested), for the reply.
local cancelled = 0

-- A task that was queued or delayed ends expired (includes/expired).
local function expire(user, task)
  endExpired(task, now, retention)
  changeStats(user, 'x', 1)
  redis.call('HINCRBY', KEYS[4], 'q', -1)
  redis.call('HINCRBY', KEYS[4], 'x', 1)
  redis.call(PUBLISH, progress, user.id)
  expired = expired + 1
end

-- A delayed task whose moment has come, if it still is where the plan saw
-- it, joins the back of its user's queue, or ends expired when its start_by
-- has passed. Returns true when it is the head of its queue now (the user
-- is due now).
local function undelay(item)
  local user = item.user
  local member = item.taskId .. ':' .. user.id
  local moment = redis.call('ZSCORE', KEYS[8], member)
  if not moment or tonumber(moment) > now then
    return false
  end
  redis.call('ZREM', KEYS[8], member)
  changeStats(user, 'n', -1)
  local task = item.task
  if redis.call('EXISTS', task) == 0 then
    redis.call('HINCRBY', KEYS[4], 'q', -1)
    return false
  end
  if pastStartBy(task, now) then
    expire(user, task)
    return false
  end
  local place = queueBehind(user.queue, user.stats, item.taskId, taskPriority(task), now)
  user.counted = true
  redis.call(PUBLISH, progress, user.id)
  if place > 1 then
    return false
  end
  redis.call('HSET', KEYS[5], user.id, item.taskId)
  if redis.call('LLEN', user.queue) > 1 then
    -- Ahead of others: the user keeps its due moment.
    return false
  end
  redis.call('ZADD', KEYS[1], 'LT', now, user.id)
  return true
end

-- A task leaves its lease (its process is gone) or its retry wait, if it
-- still is where the plan saw it and its moment has come. Returns true when
-- it is back at the head of its queue (not dead-lettered, and no task of a
-- higher priority is queued).
local function requeue(item, set, from)
  local user = item.user
  local member = item.taskId .. ':' .. user.id
  local moment = redis.call('ZSCORE', set, member)
  if not moment or tonumber(moment) > now then
    return false
  end
  redis.call('ZREM', set, member)
  local task = item.task
  if redis.call('EXISTS', task) == 0 then
    return false
  end
  if from == 'lease' then
    changeStats(user, 'r', -1)
    if redis.call('HGET', task, FIELD_CANCEL_REQUESTED) then
      -- Cancelled while it ran: it ends here, not run again.
      endCancelled(task, now, retention, user.stats, KEYS[4])
      cancelled = cancelled + 1
      redis.call(PUBLISH, progress, user.id)
      return false
    end
    if tonumber(redis.call('HGET', task, FIELD_ATTEMPTS) or '0') >= maxAttempts then
      attemptFailed(task, user.stats, KEYS[4], 'its process stopped while running it, on the last attempt', now)
      deadLettered = deadLettered + 1
      if deadLetter(task, item.taskId, user.id, user.dead, deadCap, deadRetention, user.stats, KEYS[4], PUBLISH, progress, now)
          and not user.overCap then
        user.overCap = true
        overCap[#overCap + 1] = user.id
      end
      return false
    end
    redis.call('HINCRBY', KEYS[4], 'q', 1)
  else
    changeStats(user, 'w', -1)
  end
  redis.call('HSET', task, FIELD_STATE, STATE_QUEUED)
  local atHead = queueAhead(user.queue, user.stats, item.taskId, taskPriority(task), now) == 1
  if atHead then
    redis.call('HSET', KEYS[5], user.id, item.taskId)
  end
  user.counted = true
  -- LT: keeps an earlier due moment, adds the user when absent.
  redis.call('ZADD', KEYS[1], 'LT', now, user.id)
  redis.call(PUBLISH, progress, user.id)
  return atHead
end

local claims = {}
local claimed = 0
-- Whether any user of the partition is parked: when none is, a claimed head needs no look there.
local anyParked = redis.call('EXISTS', KEYS[12]) == 1

-- Starts the user's head task (item.task), the one the plan saw, due since
-- dueAt: unless it is past its start_by, its windows or cap hold it, or
-- (from the due users) the caller does not run its kind.
local function startHead(item, dueAt, parked)
  local user = item.user
  if pastStartBy(item.task, now) then
    -- Not started by its start_by: it never starts. The user keeps its due
    -- moment for the next task.
    redis.call('LPOP', user.queue)
    leftQueue(user.stats, taskPriority(item.task), now)
    expire(user, item.task)
    headChanged(user.queue, KEYS[5], KEYS[1], user.id)
    rerouteIfParked(user.queue, KEYS[11], KEYS[12], KEYS[1], user.id, now, PUBLISH, wakeChannel)
    return
  end
  if not user.bound then
    return
  end
  local cost = costOf(item.task)
  local blocked, read = policyWait(user.policy, cost)
  blocked = math.max(blocked, capWait(atRunningCap(user.policy, user.stats), user.stats, leaseMs))
  if blocked > 0 then
    redis.call('ZADD', KEYS[1], now + blocked, user.id)
    if parked then
      unpark(KEYS[11], KEYS[12], user.id)
      redis.call(PUBLISH, wakeChannel, now + blocked)
    end
    return
  end
  local task = item.task
  -- What the reply carries, read once (a claim does not change them); the kind decides first.
  local fields = redis.call('HMGET', task, FIELD_KIND, FIELD_PAYLOAD, FIELD_TRACEPARENT, FIELD_SUBMITTED)
  if not parked then
    local kind = fields[1] or ''
    if not runs[kind] then
      redis.call('ZREM', KEYS[1], user.id)
      park(KEYS[11], KEYS[12], user.id, kind, dueAt)
      anyParked = true
      redis.call(PUBLISH, wakeChannel, dueAt .. ' ' .. kind)
      return
    end
  end
  local taskId = redis.call('LPOP', user.queue)
  local nextWait = policyUse(user.policy, read, cost)
  leftQueue(user.stats, taskPriority(task), now)
  local attempt = redis.call('HINCRBY', task, FIELD_ATTEMPTS, 1)
  redis.call('HSET', task, FIELD_STATE, STATE_RUNNING, FIELD_STARTED, now, FIELD_CLAIM, claimId)
  redis.call('RPUSH', KEYS[6], taskId, user.id, attempt)
  redis.call('ZADD', KEYS[2], now + leaseMs, taskId .. ':' .. user.id)
  changeStats(user, 'r', 1)
  redis.call('HINCRBY', KEYS[4], 'q', -1)
  redis.call(PUBLISH, progress, user.id)
  claims[#claims + 1] = taskId
  claims[#claims + 1] = user.id
  claims[#claims + 1] = fields[1] or ''
  claims[#claims + 1] = fields[2] or ''
  claims[#claims + 1] = attempt
  claims[#claims + 1] = dueAt
  claims[#claims + 1] = fields[3] or ''
  -- The submit moment only matters to a trace.
  claims[#claims + 1] = fields[3] and fields[4] or ''
  claimed = claimed + 1
  -- Parked, or parked and put back among the due users since: no longer.
  if anyParked then
    unpark(KEYS[11], KEYS[12], user.id)
  end
  headChanged(user.queue, KEYS[5], KEYS[1], user.id)
  if redis.call('LLEN', user.queue) > 0 then
    redis.call('ZADD', KEYS[1], now + nextWait, user.id)
  end
end

-- Is the plan's head task still the head? If not, the heads hash is mended
-- (and a user whose queue emptied leaves the due users).
local function stillHead(item)
  local user = item.user
  local head = redis.call('LINDEX', user.queue, 0)
  if head and head == item.taskId and redis.call('HGET', KEYS[5], user.id) == head then
    return true
  end
  headChanged(user.queue, KEYS[5], KEYS[1], user.id)
  return false
end

-- Claims the user's head task if it is still the one the plan saw and due.
local function claimHead(item)
  local dueAt = redis.call('ZSCORE', KEYS[1], item.user.id)
  if not dueAt or tonumber(dueAt) > now then
    return
  end
  if stillHead(item) then
    startHead(item, tonumber(dueAt), false)
  end
end

-- Claims a parked user's head task if the user is still parked with it;
-- sends one whose head changed back to the due users, to be routed again.
local function claimParked(item)
  local user = item.user
  local member = redis.call('HGET', KEYS[12], user.id)
  if not member then
    return
  end
  -- Parked under a kind of this caller's, with that head: unless the head
  -- changed since (parked once under another kind while paused, say).
  if stillHead(item) and runs[redis.call('HGET', item.task, FIELD_KIND) or ''] then
    startHead(item, parkedDue(member), true)
    return
  end
  rerouteIfParked(user.queue, KEYS[11], KEYS[12], KEYS[1], user.id, now, PUBLISH, wakeChannel)
end

-- A paused user starts nothing: it leaves the due users (parked), and
-- ResumeQueue schedules it again. Parking takes no claim.
local function parkIfPaused(user)
  if redis.call('SISMEMBER', KEYS[7], user.id) == 0 then
    return false
  end
  redis.call('ZREM', KEYS[1], user.id)
  unpark(KEYS[11], KEYS[12], user.id)
  return true
end

-- Each user's head to claim: the plan's (earliest due first), unless a
-- recovered task went back in front of it. A recovered task's key is
-- declared, so it can start in this step, without another plan.
local heads, order = {}, {}
for _, item in ipairs(items) do
  if item.kind == 'head' or item.kind == 'parked' then
    heads[item.user] = item
    order[#order + 1] = item.user
  end
end
for _, item in ipairs(items) do
  local set = item.kind == 'lease' and KEYS[2] or item.kind == 'retry' and KEYS[3] or nil
  local moved
  if item.kind == 'delayed' then
    moved = undelay(item)
  else
    moved = set and requeue(item, set, item.kind)
  end
  if moved then
    if not heads[item.user] then
      order[#order + 1] = item.user
    end
    heads[item.user] = item
  end
end
for _, user in ipairs(order) do
  if not parkIfPaused(user) and claimed < maxClaims then
    local item = heads[user]
    if item.kind == 'parked' then
      claimParked(item)
    else
      claimHead(item)
    end
  end
end

if claimed > 0 then
  redis.call('PEXPIRE', KEYS[6], recordMs)
end
for _, user in ipairs(users) do
  if user.counted then
    statsSettle(user.stats, retention)
  end
end

local out = {now, nextDueFor(KEYS[1], KEYS[11], kinds, routes), -1, -1, deadLettered, expired, cancelled, #overCap}
if routes then
  out[3], out[4] = earliestOf(KEYS[3], KEYS[8]), earliest(KEYS[2])
end
for _, userId in ipairs(overCap) do
  out[#out + 1] = userId
end
for _, entry in ipairs(claims) do
  out[#out + 1] = entry
end
return out
