--[[
  admit: decide what happens to one submitted task and store it, in one step,
  so no other Submit, claim or host can interleave between the decision and
  the write (invariants 1, 2, 6 and 8 of DESIGN.md).

  The task starts now only if its user has nothing queued, every window has
  room and the admitting process has a free slot; then one unit of every
  window is used, with rate-limiter-flexible's own semantics (includes/window),
  and the task is recorded as running under a lease, marked as started by admit. Otherwise it joins the back of the user's
  queue (due at once if only a free slot was missing), or, in reject mode or
  with the backlog at its cap, nothing is stored.
  A window that is full uses no unit of any other window.
  A queued task takes its place by priority (includes/priority): behind
  every task of its level and above, ahead of lower ones; one that lands at
  the head of a non-empty queue is named in the heads hash, and a user
  parked under its old head's kind goes back to the due users, to be routed
  by the new head (includes/parked).
  While the user's queue is paused (KEYS[9]) nothing starts: the task is
  queued, and a new head is named in the heads hash but the user is not made
  due (ResumeQueue does that), or, in reject mode, nothing is stored.
  A delayed task (ARGV[14] later than now) neither starts nor joins the
  queue: it waits in the partition's delayed set (KEYS[10]) until its
  moment, counted as queued (q) and delayed (the user's n gauge), and the
  drainers are woken for that moment; claim then moves it to the back of the
  queue. Reject mode stores it too (what the policy allows is decided at its
  moment), unless the queue is paused; the backlog cap counts it with the
  queued ones.

  KEYS[1]   queue list of the user
  KEYS[2]   due-users sorted set
  KEYS[3]   task hash of the new task
  KEYS[4]   idempotency key (untouched when ARGV[4] is empty)
  KEYS[5]   leases sorted set
  KEYS[6]   the user's stats hash
  KEYS[7]   totals hash
  KEYS[8]   heads hash (user id -> head task id)
  KEYS[9]   paused-users set
  KEYS[10]  delayed-tasks sorted set
  KEYS[11]  the partition's policies hash (user id -> plan or override)
  KEYS[12]  the partition's plans hash (plan name -> spec)
  KEYS[13]  parked-users sorted set
  KEYS[14]  parked-users hash
  KEYS[15..] rate-limiter-flexible counters, one per duration in ARGV[20..]
  ARGV[1]   task id
  ARGV[2]   user id
  ARGV[3]   payload (bytes)
  ARGV[4]   idempotency key, or empty
  ARGV[5]   kind, or empty
  ARGV[6]   "queue" or "reject": what to do when the task cannot start now
  ARGV[7]   backlog cap (queued tasks per user)
  ARGV[8]   retention, seconds: the idempotency key's lifetime, and the
            stats hash's once the user has nothing running (includes/user-stats)
  ARGV[9]   lease length, ms
  ARGV[10]  "1" if this process has a free slot to run the task now, else "0"
  ARGV[11]  channel on which drainers are woken when a user becomes due
  ARGV[12]  progress channel (the user id is published when its counts change)
  ARGV[13]  "SPUBLISH" on a Redis Cluster (sharded pub/sub), else "PUBLISH"
  ARGV[14]  not before, ms ("0": now)
  ARGV[15]  start by, ms, stored on the record ("" for none)
  ARGV[16] the fallback policy spec (TOLLGATE_RATE_LIMITS), for when no
            plan "default" is stored (includes/policy)
  ARGV[17]  cost: units of every window the task uses when it starts
  ARGV[18]  priority, 0 to 9 (includes/priority)
  ARGV[19]  W3C traceparent of the Submit span, stored on the record ("" for none)
  ARGV[20..] the duration (whole seconds) of each counter in KEYS[13..]
  Returns   {outcome, task id, n, now ms, policy spec, count 1, pttl 1,
            count 2, pttl 2, ...}, one count and pttl per window of the
            user's effective policy (includes/policy), in its order.
            outcome (src/redis/reply-codes.ts) ADMIT_STARTED (n = 0),
            ADMIT_QUEUED (n = position, priority counted), ADMIT_DUPLICATE (task id is the
            first task's; no window state), ADMIT_OVER_LIMIT in reject mode
            (n = queue length), ADMIT_BACKLOG_FULL (n = queue length),
            ADMIT_PAUSED in reject mode while the queue is paused (n =
            queue length). A delayed task answers ADMIT_QUEUED with n =
            the place it would take at the back of the queue if its moment
            were now (its priority not counted).
            ADMIT_POLICY_CHANGED: the declared counters do not cover the
            user's policy (the spec in the reply); nothing stored, run again.
            ADMIT_COST_TOO_HIGH: the cost is above window n's limit, so the
            task could never start; nothing stored.
            A task starts only while the user runs fewer tasks than its
            policy's max running (stats r); one held by that cap queues as
            the head, due a lease from now at the latest (finish makes it
            due as soon as one of the user's tasks ends).
            Counts and pttls are after the start, if any; pttl is -2 where
            no window is open.
]]
--- @include "time"
--- @include "window"
--- @include "policy"
--- @include "task-record"
--- @include "user-stats"
--- @include "heads"
--- @include "parked"
--- @include "priority"
--- @include "reply-codes"

local now = currentMs()
local taskId, userId = ARGV[1], ARGV[2]

if ARGV[4] ~= '' then
  local first = redis.call('GET', KEYS[4])
  if first then
    return {ADMIT_DUPLICATE, first, 0, now}
  end
end

local PUBLISH = ARGV[13]
local notBefore, startBy = tonumber(ARGV[14]), ARGV[15]
local cost, priority = tonumber(ARGV[17]), tonumber(ARGV[18])
-- What storeTask stores beyond the common fields.
local extras = {startBy = startBy, priority = priority, traceparent = ARGV[19]}
local policy = resolvePolicy(KEYS[11], KEYS[12], userId, ARGV[16])
if not bindWindows(policy, declaredWindows(15, 20, #KEYS - 14)) then
  return {ADMIT_POLICY_CHANGED, taskId, 0, now, policy.spec}
end
for i, window in ipairs(policy.windows) do
  if cost > window.limit then
    return {ADMIT_COST_TOO_HIGH, taskId, i, now, policy.spec}
  end
end
-- ms until every window has room for the cost (0: it has now), and what was read
local wait, read = policyWait(policy, cost)
local capped = atRunningCap(policy, KEYS[6])

local function reply(outcome, n)
  local out = {outcome, taskId, n, now, policy.spec}
  for _, window in ipairs(read) do
    out[#out + 1] = window[1]
    out[#out + 1] = window[2]
  end
  return out
end

local function remember()
  if ARGV[4] ~= '' then
    redis.call('SET', KEYS[4], taskId, 'EX', ARGV[8])
  end
end

local queued = redis.call('LLEN', KEYS[1])
local paused = redis.call('SISMEMBER', KEYS[9], userId) == 1

if notBefore > now then
  if ARGV[6] == 'reject' and paused then
    return reply(ADMIT_PAUSED, queued)
  end
  local delayed = tonumber(redis.call('HGET', KEYS[6], 'n') or '0')
  if queued + delayed >= tonumber(ARGV[7]) then
    return reply(ADMIT_BACKLOG_FULL, queued + delayed)
  end
  storeTask(KEYS[3], userId, ARGV[3], ARGV[5], now, false, extras)
  storeCost(KEYS[3], cost)
  redis.call('HSET', KEYS[3], FIELD_NOT_BEFORE, notBefore)
  redis.call('ZADD', KEYS[10], notBefore, taskId .. ':' .. userId)
  statsAdd(KEYS[6], 'n', 1, now)
  statsSettle(KEYS[6], ARGV[8])
  redis.call('HINCRBY', KEYS[7], 'q', 1)
  redis.call(PUBLISH, ARGV[12], userId)
  redis.call(PUBLISH, ARGV[11], notBefore)
  remember()
  return reply(ADMIT_QUEUED, queued + 1)
end

-- Within the policy: not paused, nothing queued ahead and every window has room.
local withinPolicy = not paused and queued == 0 and wait == 0 and not capped

if withinPolicy and ARGV[10] == '1' then
  policyUse(policy, read, cost)
  -- Marked as started by admit: a Submit that lost this reply reads that to
  -- learn whether to run the task (admit-outcome-n.lua).
  storeTask(KEYS[3], userId, ARGV[3], ARGV[5], now, true, extras)
  storeCost(KEYS[3], cost)
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[9]), taskId .. ':' .. userId)
  statsAdd(KEYS[6], 'r', 1, now)
  statsSettle(KEYS[6], ARGV[8])
  redis.call(PUBLISH, ARGV[12], userId)
  remember()
  return reply(ADMIT_STARTED, 0)
end

-- Reject mode refuses only what the policy (or a pause) refuses; a task within
-- the policy that merely waits for a free slot is queued and starts on any process.
if ARGV[6] == 'reject' and paused then
  return reply(ADMIT_PAUSED, queued)
end
if ARGV[6] == 'reject' and not withinPolicy then
  return reply(ADMIT_OVER_LIMIT, queued)
end
if queued >= tonumber(ARGV[7]) then
  return reply(ADMIT_BACKLOG_FULL, queued)
end

local place = queueBehind(KEYS[1], KEYS[6], taskId, priority, now)
storeTask(KEYS[3], userId, ARGV[3], ARGV[5], now, false, extras)
storeCost(KEYS[3], cost)
if place == 1 and (queued > 0 or paused) then
  -- A new head ahead of others keeps the user's due moment; a paused
  -- queue's is named, not due (ResumeQueue schedules it).
  redis.call('HSET', KEYS[8], userId, taskId)
  if not paused then
    rerouteIfParked(KEYS[1], KEYS[13], KEYS[14], KEYS[2], userId, now, PUBLISH, ARGV[11])
  end
elseif queued == 0 then
  -- The task is the new head: it is due when every window has room (and
  -- the cap, if it binds, frees: see capWait).
  scheduleNewHead(KEYS[2], KEYS[8], userId, taskId, now + math.max(wait, capWait(capped, KEYS[6], ARGV[9])), PUBLISH, ARGV[11])
end
redis.call('HINCRBY', KEYS[7], 'q', 1)
redis.call(PUBLISH, ARGV[12], userId)
remember()
return reply(ADMIT_QUEUED, place)
