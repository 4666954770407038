--[[
  claim: one drainer step, atomic, so two processes or hosts can never claim
  the same task or overrun a window between them.

  1. Tasks whose lease has expired (their process died or stalled) go back to
     the head of their user's queue, or to its dead-letter list when they have
     used every attempt.
  2. Tasks whose retry backoff is over go back to the head of their queue.
  3. Up to ARGV[1] due users, earliest due first (so users are served
     round-robin when slots are scarce), each have their head task claimed if
     every window has room: one unit of each window is used with
     rate-limiter-flexible's semantics (includes/window), the task is marked running under a
     lease, and the user is rescheduled for when its next task may start.
     A user whose windows are full is moved to when they will have room.
  Every user whose counts change is published on the progress channel.
  Each claimed task is marked with the caller's claim id, and the claim is
  recorded under that id for a short while: a caller whose client gave up
  waiting for the reply (a command timeout while Redis was busy) reads it back
  and hands the tasks back instead of leaving them to wait out their leases.

  Per-user keys are built from the prefixes the caller passes (src/keys.ts
  makes them); so all of Tollgate's keys must live in one Redis (standalone or
  Sentinel; on Cluster the prefix must carry one hash tag).

  KEYS[1]  due-users sorted set
  KEYS[2]  leases sorted set
  KEYS[3]  retries sorted set
  KEYS[4]  totals hash
  KEYS[5]  this claim's record (list: task id, user id, attempt per claimed task)
  ARGV[1]  most tasks to claim (free slots of the caller)
  ARGV[2]  lease length, ms
  ARGV[3]  most attempts per task
  ARGV[4]  queue key prefix (user id follows)
  ARGV[5]  task key prefix (task id follows)
  ARGV[6]  dead-letter key prefix (user id follows)
  ARGV[7]  stats key prefix (user id follows)
  ARGV[8]  dead-letter list cap
  ARGV[9]  progress channel
  ARGV[10] claim id, stored on each claimed task hash (FIELD_CLAIM)
  ARGV[11] how long the claim's record is kept, ms
  ARGV[12..] per window: key prefix (":" and the user id follow), limit, duration in seconds
  Returns  {now, next due, next retry, next lease expiry, claims...}: the next
           moments are ms, or -1 when there is none; each claim is six
           entries: task id, user id, kind, payload, attempt, due moment.
]]
--- @include "time"
--- @include "window"
--- @include "dead-letter"
--- @include "task-fields"

local now = currentMs()
local maxClaims = tonumber(ARGV[1])
local leaseMs = tonumber(ARGV[2])
local maxAttempts = tonumber(ARGV[3])
local queuePrefix, taskPrefix, deadPrefix, statsPrefix = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local deadCap = ARGV[8]
local progress = ARGV[9]
local claimId, recordMs = ARGV[10], tonumber(ARGV[11])
local windows = {}
for i = 12, #ARGV, 3 do
  windows[#windows + 1] = {prefix = ARGV[i] .. ':', limit = tonumber(ARGV[i + 1]), seconds = ARGV[i + 2]}
end

-- A task leaves its lease (its process is gone) or its retry wait.
local function requeue(taskId, from)
  local task = taskPrefix .. taskId
  local userId = redis.call('HGET', task, FIELD_USER)
  if not userId then
    return
  end
  local stats = statsPrefix .. userId
  if from == 'lease' then
    redis.call('HINCRBY', stats, 'r', -1)
    if tonumber(redis.call('HGET', task, FIELD_ATTEMPTS) or '0') >= maxAttempts then
      attemptFailed(task, stats, KEYS[4], 'its process stopped while running it, on the last attempt')
      deadLetter(task, taskId, userId, deadPrefix .. userId, deadCap, stats, KEYS[4], progress, now)
      return
    end
    redis.call('HINCRBY', KEYS[4], 'q', 1)
  else
    redis.call('HINCRBY', stats, 'w', -1)
  end
  redis.call('HSET', task, FIELD_STATE, STATE_QUEUED)
  redis.call('LPUSH', queuePrefix .. userId, taskId)
  -- LT: keeps an earlier due moment, adds the user when absent.
  redis.call('ZADD', KEYS[1], 'LT', now, userId)
  redis.call('PUBLISH', progress, userId)
end

-- Up to 100 tasks whose moment in the set has come leave it.
local function recover(set, from)
  for _, taskId in ipairs(redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', set, taskId)
    requeue(taskId, from)
  end
end
recover(KEYS[2], 'lease')
recover(KEYS[3], 'retry')

-- Reads the user's windows: ms until every one has room (0: now) and what
-- it read, which use() needs.
local function wait(userId)
  local longest, counts, pttls = 0, {}, {}
  for k, window in ipairs(windows) do
    counts[k], pttls[k] = windowRead(window.prefix .. userId)
    longest = math.max(longest, windowWait(counts[k], pttls[k], window.limit))
  end
  return longest, counts, pttls
end

-- Uses one unit of every window. Returns ms until every window has room again.
local function use(userId, counts, pttls)
  local longest = 0
  for k, window in ipairs(windows) do
    local count, pttl = windowUse(window.prefix .. userId, counts[k], pttls[k], window.seconds)
    longest = math.max(longest, windowWait(count, pttl, window.limit))
  end
  return longest
end

local out = {now, -1, -1, -1}
if maxClaims > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, maxClaims)
  for i = 1, #due, 2 do
    local userId, dueAt = due[i], due[i + 1]
    local queue = queuePrefix .. userId
    local blocked, counts, pttls = wait(userId)
    if blocked > 0 then
      redis.call('ZADD', KEYS[1], now + blocked, userId)
    else
      local taskId = redis.call('LPOP', queue)
      if not taskId then
        redis.call('ZREM', KEYS[1], userId)
      else
        local nextWait = use(userId, counts, pttls)
        local task = taskPrefix .. taskId
        local attempt = redis.call('HINCRBY', task, FIELD_ATTEMPTS, 1)
        redis.call('HSET', task, FIELD_STATE, STATE_RUNNING, FIELD_STARTED, now, FIELD_CLAIM, claimId)
        redis.call('RPUSH', KEYS[5], taskId, userId, attempt)
        redis.call('ZADD', KEYS[2], now + leaseMs, taskId)
        redis.call('HINCRBY', statsPrefix .. userId, 'r', 1)
        redis.call('HINCRBY', KEYS[4], 'q', -1)
        redis.call('PUBLISH', progress, userId)
        local fields = redis.call('HMGET', task, FIELD_KIND, FIELD_PAYLOAD)
        out[#out + 1] = taskId
        out[#out + 1] = userId
        out[#out + 1] = fields[1] or ''
        out[#out + 1] = fields[2] or ''
        out[#out + 1] = attempt
        out[#out + 1] = dueAt
        if redis.call('LLEN', queue) == 0 then
          redis.call('ZREM', KEYS[1], userId)
        else
          redis.call('ZADD', KEYS[1], now + nextWait, userId)
        end
      end
    end
  end
end

if #out > 4 then
  redis.call('PEXPIRE', KEYS[5], recordMs)
end

local function first(key)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] then
    return tonumber(head[2])
  end
  return -1
end
out[2] = first(KEYS[1])
out[3] = first(KEYS[3])
out[4] = first(KEYS[2])
return out
