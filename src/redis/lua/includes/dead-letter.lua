--[[
  dead-letter: a failed attempt, and a task that has used its last attempt
  moving to its user's dead-letter list (newest first), with the counters
  WatchQueue reads and a progress message; and the list's trimming.

  A dead letter's record and its place on the list end together:
  - by time: the record expires the dead-letter retention after it died,
    and the list that retention after its newest entry, so no record
    outlives the list (an entry whose record expired stays until the list
    does, and GetTask answers NOT_FOUND for it as for any expired task);
  - at the cap: the ids past it leave the list and their records are deleted
    in one step (trimDeadLetters). A script may only touch the keys it
    declares, and the script that dead-letters cannot know which records it
    will push out, so it does not trim: it answers whether the list is over
    its cap, and the store then reads the ids past the cap and deletes them
    with their records declared (trim-dead-letters-n). Until then, or if that
    step never comes (the process died), the list is over its cap by those
    few ids, whose records are still there and are trimmed at the user's
    next dead letter or expire with the list: never a record without its id.
  An operator takes dead letters off the list on purpose, by id: requeued
  (the record made a queued task again, no longer expiring) or purged (the
  record deleted with it): requeue-dead-letters-n and purge-dead-letters-n.
]]
--- @include "task-fields"
--- @include "user-stats"

-- Counts one failed attempt of a task and keeps its error.
local function attemptFailed(task, stats, totals, err, now)
  redis.call('HSET', task, FIELD_ERROR, err)
  statsAdd(stats, 'f', 1, now)
  redis.call('HINCRBY', totals, 'f', 1)
end

-- Moves a task whose last attempt failed to its user's dead-letter list;
-- publish is PUBLISH or SPUBLISH (a Cluster's sharded pub/sub). The record
-- and the list expire `retention` seconds from now. Returns true when the
-- list is now over its cap (the caller reports it, see above).
local function deadLetter(task, taskId, userId, dead, cap, retention, stats, totals, publish, progress, now)
  redis.call('HSET', task, FIELD_STATE, STATE_DEAD, FIELD_FINISHED, now)
  redis.call('EXPIRE', task, retention)
  redis.call('LPUSH', dead, taskId)
  redis.call('EXPIRE', dead, retention)
  statsAdd(stats, 'd', 1, now)
  redis.call('HINCRBY', totals, 'd', 1)
  redis.call(publish, progress, userId)
  return redis.call('LLEN', dead) > tonumber(cap)
end

-- Drops the given dead letters that are past the list's cap: each leaves the
-- list and its record is deleted, and the partition's totals count it (dx).
-- ids[i]'s record is taskKeys[i]. Returns how many were dropped.
local function trimDeadLetters(dead, cap, totals, ids, taskKeys)
  local past = {}
  for _, id in ipairs(redis.call('LRANGE', dead, tonumber(cap), -1)) do
    past[id] = true
  end
  local dropped = 0
  for i, id in ipairs(ids) do
    if past[id] then
      past[id] = nil
      redis.call('LREM', dead, -1, id)
      redis.call('DEL', taskKeys[i])
      dropped = dropped + 1
    end
  end
  if dropped > 0 then
    redis.call('HINCRBY', totals, 'dx', dropped)
  end
  return dropped
end

-- Takes one id off the user's dead-letter list. Returns whether it was on it.
local function takeDeadLetter(dead, id)
  return redis.call('LREM', dead, 0, id) > 0
end

-- Makes a dead letter's record a queued task again, as a new one is, but
-- keeping its id, user, payload, kind and submit time: no attempts, no error,
-- start or end, no start_by (an operator requeued it on purpose), and no
-- expiry (the queue owns it now).
local function reviveDeadLetter(task)
  redis.call('HSET', task, FIELD_STATE, STATE_QUEUED, FIELD_ATTEMPTS, 0)
  redis.call('HDEL', task, FIELD_ERROR, FIELD_STARTED, FIELD_FINISHED, FIELD_CLAIM, FIELD_STARTED_BY_ADMIT, FIELD_START_BY)
  redis.call('PERSIST', task)
end
