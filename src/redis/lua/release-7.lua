--[[
  release: hand back a claimed task that this process will not run, or whose
  run it cut short (it is stopping): the task goes back to the head of its
  user's queue (ahead of the rest of its priority level, includes/priority),
  the user is due now, and the attempt is not counted, since it
  never ran to an outcome. Without this the task would wait out its lease and
  the interrupted run would count as an attempt (dead-lettering a task on its
  last attempt though its handler never failed). Only the attempt that holds
  the lease may release it, as in finish; with a claim id, only that claim's.
  The window units its claim used are not given back: a start was counted.

  KEYS[1]  task hash
  KEYS[2]  leases sorted set
  KEYS[3]  the user's queue list
  KEYS[4]  due-users sorted set
  KEYS[5]  the user's stats hash
  KEYS[6]  totals hash
  KEYS[7]  heads hash (user id -> head task id)
  ARGV[1]  task id
  ARGV[2]  attempt number that was claimed
  ARGV[3]  user id
  ARGV[4]  claim id the task was claimed with, or "" not to check it
  ARGV[5]  progress channel
  ARGV[6]  channel on which drainers are woken (the user is due at the published moment)
  ARGV[7]  the task's member in the leases set (task id:user id)
  ARGV[8]  "SPUBLISH" on a Redis Cluster (sharded pub/sub), else "PUBLISH"
  ARGV[9]  retention, seconds: how long the user's stats hash is kept once
           nothing of the user runs or waits to retry (includes/user-stats),
           and a cancelled task's record
  A task whose cancel was requested while it ran (cancel-n) ends cancelled
  instead, counted in the user's and the totals' c (includes/cancelled).
  Returns  RELEASE_RELEASED, RELEASE_CANCELLED, or RELEASE_LEASE_LOST (it ran out and the task
           was handed on; src/redis/reply-codes.ts)
]]
--- @include "time"
--- @include "lease"
--- @include "task-fields"
--- @include "user-stats"
--- @include "reply-codes"
--- @include "cancelled"
--- @include "priority"

local member, PUBLISH = ARGV[7], ARGV[8]
if not holdsLease(KEYS[2], KEYS[1], member, ARGV[2])
    or (ARGV[4] ~= '' and redis.call('HGET', KEYS[1], FIELD_CLAIM) ~= ARGV[4]) then
  return RELEASE_LEASE_LOST
end
local now = currentMs()
redis.call('ZREM', KEYS[2], member)
if redis.call('HGET', KEYS[1], FIELD_CANCEL_REQUESTED) then
  -- Cancelled while it ran: it ends here instead of going back to its queue.
  endCancelled(KEYS[1], now, ARGV[9], KEYS[5], KEYS[6])
  statsAdd(KEYS[5], 'r', -1, now)
  statsSettle(KEYS[5], ARGV[9])
  redis.call(PUBLISH, ARGV[5], ARGV[3])
  return RELEASE_CANCELLED
end
local attempts = redis.call('HINCRBY', KEYS[1], FIELD_ATTEMPTS, -1)
redis.call('HSET', KEYS[1], FIELD_STATE, STATE_QUEUED)
redis.call('HDEL', KEYS[1], FIELD_CLAIM)
if attempts == 0 then
  -- Never started to an outcome: it has no start time either.
  redis.call('HDEL', KEYS[1], FIELD_STARTED)
end
if queueAhead(KEYS[3], KEYS[5], ARGV[1], taskPriority(KEYS[1]), now) == 1 then
  redis.call('HSET', KEYS[7], ARGV[3], ARGV[1])
end
-- LT: keeps an earlier due moment, adds the user when absent.
redis.call('ZADD', KEYS[4], 'LT', now, ARGV[3])
statsAdd(KEYS[5], 'r', -1, now)
statsSettle(KEYS[5], ARGV[9])
redis.call('HINCRBY', KEYS[6], 'q', 1)
redis.call(PUBLISH, ARGV[5], ARGV[3])
redis.call(PUBLISH, ARGV[6], now)
return RELEASE_RELEASED
