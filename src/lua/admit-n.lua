--[[
  admit: decide what happens to one submitted task and store it, in one step,
  so no other Submit, claim or host can interleave between the decision and
  the write (invariants 1, 2, 6 and 8 of DESIGN.md).

  The task starts now only if its user has nothing queued, every window has
  room and the admitting process has a free slot; then one unit of every window is used, with rate-limiter-flexible's
  own semantics (SET key 0 EX duration NX, then INCRBY), and the task is
  recorded as running under a lease (with adm = 1). Otherwise it joins the back of the user's
  queue (due at once if only a free slot was missing), or, in reject mode or
  with the backlog at its cap, nothing is stored.
  A window that is full uses no unit of any other window.

  KEYS[1]   queue list of the user
  KEYS[2]   due-users sorted set
  KEYS[3]   task hash of the new task
  KEYS[4]   idempotency key (untouched when ARGV[4] is empty)
  KEYS[5]   leases sorted set
  KEYS[6]   the user's stats hash
  KEYS[7]   totals hash
  KEYS[8..] one rate-limiter-flexible counter per window, in policy order
  ARGV[1]   task id
  ARGV[2]   user id
  ARGV[3]   payload (bytes)
  ARGV[4]   idempotency key, or empty
  ARGV[5]   kind, or empty
  ARGV[6]   "queue" or "reject": what to do when the task cannot start now
  ARGV[7]   backlog cap (queued tasks per user)
  ARGV[8]   idempotency key lifetime, seconds
  ARGV[9]   lease length, ms
  ARGV[10]  "1" if this process has a free slot to run the task now, else "0"
  ARGV[11]  channel on which drainers are woken when a user becomes due
  ARGV[12]  progress channel (the user id is published when its counts change)
  ARGV[13..] per window: limit, then duration in whole seconds
  Returns   {outcome, task id, n, now ms, count 1, pttl 1, count 2, pttl 2, ...}
            outcome 1 started (n = 0), 2 queued (n = position),
            3 duplicate (task id is the first task's; no window state),
            4 over the limit in reject mode (n = queue length),
            5 backlog full (n = queue length).
            pttl is -2 where no window is open.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local taskId, userId = ARGV[1], ARGV[2]

if ARGV[4] ~= '' then
  local first = redis.call('GET', KEYS[4])
  if first then
    return {3, first, 0, now}
  end
end

local windows = #KEYS - 7
local counts, pttls, limits = {}, {}, {}
local full = false
for i = 1, windows do
  local key = KEYS[7 + i]
  limits[i] = tonumber(ARGV[11 + 2 * i])
  counts[i] = tonumber(redis.call('GET', key) or '0')
  pttls[i] = -2
  if counts[i] > 0 then
    pttls[i] = redis.call('PTTL', key)
  end
  if counts[i] >= limits[i] then
    full = true
  end
end

local function reply(outcome, n)
  local out = {outcome, taskId, n, now}
  for i = 1, windows do
    out[#out + 1] = counts[i]
    out[#out + 1] = pttls[i]
  end
  return out
end

local function remember()
  if ARGV[4] ~= '' then
    redis.call('SET', KEYS[4], taskId, 'EX', ARGV[8])
  end
end

local queued = redis.call('LLEN', KEYS[1])

-- Within the policy: nothing queued ahead and every window has room.
local withinPolicy = queued == 0 and not full

if withinPolicy and ARGV[10] == '1' then
  for i = 1, windows do
    local key = KEYS[7 + i]
    -- rate-limiter-flexible's SET 0 EX NX then INCRBY, folded into one
    -- command since the count was just read (no key expires within a script).
    if counts[i] == 0 then
      redis.call('SET', key, 1, 'EX', ARGV[12 + 2 * i])
      pttls[i] = tonumber(ARGV[12 + 2 * i]) * 1000
    else
      redis.call('INCRBY', key, 1)
    end
    counts[i] = counts[i] + 1
  end
  -- adm marks a task started here rather than claimed from the queue: a
  -- Submit that lost this reply reads it to learn whether to run the task
  -- (admit-outcome-n.lua), and a claimed task can look alike otherwise.
  redis.call('HSET', KEYS[3], 'u', userId, 'p', ARGV[3], 's', 'r', 'a', 1, 'sub', now, 'st', now, 'adm', 1)
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[3], 'k', ARGV[5])
  end
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[9]), taskId)
  redis.call('HINCRBY', KEYS[6], 'r', 1)
  redis.call('PUBLISH', ARGV[12], userId)
  remember()
  return reply(1, 0)
end

-- Reject mode refuses only what the policy refuses; a task within the policy
-- that merely waits for a free slot is queued and starts on any process.
if ARGV[6] == 'reject' and not withinPolicy then
  return reply(4, queued)
end
if queued >= tonumber(ARGV[7]) then
  return reply(5, queued)
end

redis.call('RPUSH', KEYS[1], taskId)
redis.call('HSET', KEYS[3], 'u', userId, 'p', ARGV[3], 's', 'q', 'a', 0, 'sub', now)
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], 'k', ARGV[5])
end
if queued == 0 then
  -- The task is the new head: it is due when every full window has closed
  -- (a key lives through its last ms, hence the + 1).
  local due = now
  for i = 1, windows do
    if counts[i] >= limits[i] and pttls[i] > 0 then
      due = math.max(due, now + pttls[i] + 1)
    end
  end
  redis.call('ZADD', KEYS[2], due, userId)
  redis.call('PUBLISH', ARGV[11], due)
end
redis.call('HINCRBY', KEYS[7], 'q', 1)
redis.call('PUBLISH', ARGV[12], userId)
remember()
return reply(2, queued + 1)
