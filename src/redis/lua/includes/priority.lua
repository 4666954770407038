--[[
  priority: a user's queue is one list, higher priorities first and
  submission order within a level (SubmitRequest.priority, 0 to
  PRIORITY_MAX, 0 the default; a task's level is its record's FIELD_PRIORITY,
  absent for 0). One list keeps every reader of queue order as it was: claim
  takes the head, ListTasks and queue positions read the list.
  So that a task's place is found without reading other tasks' records, the
  user's stats hash counts the queued tasks of each level above 0 (fields
  p1 … p9, and p, their sum, which keeps the hash alive: includes/user-stats):
  the levels above a task's come first. Every script that puts a task into a
  queue or takes one out keeps the counts in step:
  - queueBehind: a task joins its queue (Submit, a delayed task whose moment
    came, a requeued dead letter): behind every task of its level and above.
  - queueAhead: a task goes back to its queue (its process stopped, its
    retry wait is over, it was handed back): ahead of the rest of its level,
    as it went back to the head before priorities, but behind every higher
    level.
  - leftQueue: a task left its queue (claimed, cancelled, expired at the
    head); the script settles the stats hash afterwards (statsSettle).
  The first two return the task's 1-based place. A count out of step with
  the list (a key edited by hand) can only misplace a task within its queue:
  the place is clamped to the list.
]]
--- @include "task-fields"
--- @include "user-stats"

-- The task's level, from its record.
local function taskPriority(task)
  return tonumber(redis.call('HGET', task, FIELD_PRIORITY) or '0')
end

-- Queued tasks of the levels from `from` up (from >= 1).
local function queuedFrom(stats, from)
  if from > PRIORITY_MAX then
    return 0
  end
  local fields = {}
  for level = from, PRIORITY_MAX do
    fields[#fields + 1] = 'p' .. level
  end
  local total = 0
  for _, count in ipairs(redis.call('HMGET', stats, unpack(fields))) do
    total = total + tonumber(count or '0')
  end
  return total
end

-- Puts the task before the one at 0-based `index`, or at the back.
local function insertAt(queue, taskId, index)
  local length = redis.call('LLEN', queue)
  if index >= length then
    return redis.call('RPUSH', queue, taskId)
  end
  if index <= 0 then
    redis.call('LPUSH', queue, taskId)
    return 1
  end
  redis.call('LINSERT', queue, 'BEFORE', redis.call('LINDEX', queue, index), taskId)
  return index + 1
end

local function countLevel(stats, priority, by, now)
  if priority > 0 then
    statsAdd(stats, 'p' .. priority, by, now)
    statsAdd(stats, 'p', by, now)
  end
end

local function queueBehind(queue, stats, taskId, priority, now)
  if priority == 0 then
    -- The common case costs what it did before priorities.
    return redis.call('RPUSH', queue, taskId)
  end
  local place = insertAt(queue, taskId, queuedFrom(stats, priority))
  countLevel(stats, priority, 1, now)
  statsKeep(stats)
  return place
end

local function queueAhead(queue, stats, taskId, priority, now)
  local place = insertAt(queue, taskId, queuedFrom(stats, priority + 1))
  if priority > 0 then
    countLevel(stats, priority, 1, now)
    statsKeep(stats)
  end
  return place
end

local function leftQueue(stats, priority, now)
  countLevel(stats, priority, -1, now)
end
