--[[
  requeue-dead-letters: puts dead letters of one user back at the tail of the
  user's queue (of their priority level, includes/priority), in the order given, each with fresh attempts (its record made
  queued again, no longer expiring: includes/dead-letter). An id not on the
  list is reported; so is one on it whose record expired already (it leaves
  the list: nothing is left to run). When the queue was empty the user is
  scheduled as admit schedules a new head (includes/heads): due when
  every window has room; one that lands ahead of the queue's head is named
  in the heads hash instead. The backlog cap is not applied (docs/api.md). The
  partition's q counts the tasks queued again, and the user's and the
  partition's rq (requeued, only ever grows) count them too; the user's d
  and the partition's d count dead-letterings ever, so they stay.

  KEYS[1]   the user's dead-letter list
  KEYS[2]   the user's queue list
  KEYS[3]   due-users sorted set
  KEYS[4]   heads hash (user id -> head task id)
  KEYS[5]   totals hash
  KEYS[6]   the user's stats hash
  KEYS[7 .. 6+W]  the user's W rate-limiter-flexible window counters, in policy order
  KEYS[7+W ..]    the record (task hash) of each id in ARGV[7+W ..], in that order
  ARGV[1]   user id
  ARGV[2]   channel on which drainers are woken when a user becomes due
  ARGV[3]   progress channel (the user id is published when its counts change)
  ARGV[4]   "SPUBLISH" on a Redis Cluster (sharded pub/sub), else "PUBLISH"
  ARGV[5]   retention, seconds: how long the user's stats hash is kept once
            nothing of it runs or waits to retry (includes/user-stats)
  ARGV[6]   W: windows per user
  then per window: its limit (ARGV[7 .. 6+W])
  ARGV[7+W ..] the task ids to requeue
  Returns   {requeued, id not found, id not found, ...}
]]
--- @include "time"
--- @include "window"
--- @include "dead-letter"
--- @include "heads"
--- @include "user-stats"
--- @include "priority"

local userId, PUBLISH, retention = ARGV[1], ARGV[4], ARGV[5]
local windowCount = tonumber(ARGV[6])
local firstId = 7 + windowCount
local queue = KEYS[2]
local wasEmpty = redis.call('LLEN', queue) == 0
local now = currentMs()
local requeued, notFound = 0, {}
for i = firstId, #ARGV do
  local id, task = ARGV[i], KEYS[i]
  if takeDeadLetter(KEYS[1], id) and redis.call('EXISTS', task) == 1 then
    reviveDeadLetter(task)
    queueBehind(queue, KEYS[6], id, taskPriority(task), now)
    requeued = requeued + 1
  else
    notFound[#notFound + 1] = id
  end
end
if requeued > 0 then
  local head = redis.call('LINDEX', queue, 0)
  if wasEmpty then
    local wait = windowsWait(windowCount, 6, 6)
    scheduleNewHead(KEYS[3], KEYS[4], userId, head, now + wait, PUBLISH, ARGV[2])
  else
    redis.call('HSET', KEYS[4], userId, head)
  end
  redis.call('HINCRBY', KEYS[5], 'q', requeued)
  redis.call('HINCRBY', KEYS[5], 'rq', requeued)
  statsAdd(KEYS[6], 'rq', requeued, now)
  statsSettle(KEYS[6], retention)
  redis.call(PUBLISH, ARGV[3], userId)
end
local out = {requeued}
for _, id in ipairs(notFound) do
  out[#out + 1] = id
end
return out
