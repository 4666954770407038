--[[
  finish: record the end of one attempt and release its lease. A failed
  attempt is retried after a backoff, or, when it was the last attempt, the
  task moves to its user's dead-letter list (includes/dead-letter: its
  record then expires with the dead-letter retention, and the list's trim at
  its cap is the caller's next step). A succeeded task's record expires the
  retention after, and the user's stats hash too once nothing of the user
  runs or waits to retry (includes/user-stats). An attempt that no longer holds
  its lease (it ran out and the task was handed on) records nothing: the
  task's current attempt owns it now. A task whose cancel was requested while
  it ran (cancel-n) ends cancelled, neither retried nor dead-lettered, and
  is counted in the user's and the totals' c (includes/cancelled).
  A user held by its cap of running tasks (includes/policy: the stats
  hash's cap mark) is made due now: one of its slots just freed.

  KEYS[1]  task hash
  KEYS[2]  leases sorted set
  KEYS[3]  retries sorted set
  KEYS[4]  the user's dead-letter list
  KEYS[5]  the user's stats hash
  KEYS[6]  totals hash
  KEYS[7]  due-users sorted set
  ARGV[1]  task id
  ARGV[2]  attempt number that ran
  ARGV[3]  "ok" or "failed"
  ARGV[4]  error message ("" when ok)
  ARGV[5]  retention, seconds: how long a succeeded task's record, and the
           stats of a user with nothing running or waiting to retry, are kept
  ARGV[6]  most attempts per task (0: a failure is not retried)
  ARGV[7]  retry backoff, ms
  ARGV[8]  dead-letter list cap
  ARGV[9]  progress channel
  ARGV[10] user id
  ARGV[11] channel on which drainers are woken (a retry's moment is published)
  ARGV[12] the task's member in the leases and retries sets (task id:user id)
  ARGV[13] "SPUBLISH" on a Redis Cluster (sharded pub/sub), else "PUBLISH"
  ARGV[14] dead-letter retention, seconds
  Returns  FINISH_SUCCEEDED, FINISH_RETRY_SCHEDULED, FINISH_DEAD, FINISH_CANCELLED,
           FINISH_DEAD_OVER_CAP (dead, and the list is over its cap: trim
           it) or FINISH_LEASE_LOST (src/redis/reply-codes.ts)
]]
--- @include "time"
--- @include "lease"
--- @include "dead-letter"
--- @include "user-stats"
--- @include "task-fields"
--- @include "reply-codes"
--- @include "cancelled"

local member, PUBLISH = ARGV[12], ARGV[13]
if not holdsLease(KEYS[2], KEYS[1], member, ARGV[2]) then
  return FINISH_LEASE_LOST
end
local now = currentMs()
redis.call('ZREM', KEYS[2], member)
statsAdd(KEYS[5], 'r', -1, now)
if redis.call('HDEL', KEYS[5], 'cap') == 1 then
  -- XX: only a user still queued and not paused (parked users are not there).
  redis.call('ZADD', KEYS[7], 'XX', 'LT', now, ARGV[10])
  redis.call(PUBLISH, ARGV[11], now)
end
if redis.call('HGET', KEYS[1], FIELD_CANCEL_REQUESTED) then
  -- Cancelled while it ran: it ends here, whatever the attempt did (its
  -- handler was most likely aborted); an error is kept, not counted as a
  -- failed attempt.
  if ARGV[3] ~= 'ok' then
    redis.call('HSET', KEYS[1], FIELD_ERROR, ARGV[4])
  end
  endCancelled(KEYS[1], now, ARGV[5], KEYS[5], KEYS[6])
  statsSettle(KEYS[5], ARGV[5])
  redis.call(PUBLISH, ARGV[9], ARGV[10])
  return FINISH_CANCELLED
end
if ARGV[3] == 'ok' then
  redis.call('HSET', KEYS[1], FIELD_STATE, STATE_SUCCEEDED, FIELD_FINISHED, now)
  -- Nobody reads a finished task's payload; keep only its record.
  redis.call('HDEL', KEYS[1], FIELD_PAYLOAD)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  statsAdd(KEYS[5], 'ok', 1, now)
  statsSettle(KEYS[5], ARGV[5])
  redis.call('HINCRBY', KEYS[6], 'ok', 1)
  redis.call(PUBLISH, ARGV[9], ARGV[10])
  return FINISH_SUCCEEDED
end
attemptFailed(KEYS[1], KEYS[5], KEYS[6], ARGV[4], now)
if tonumber(ARGV[2]) < tonumber(ARGV[6]) then
  local retryAt = now + tonumber(ARGV[7])
  redis.call('HSET', KEYS[1], FIELD_STATE, STATE_FAILED)
  redis.call('ZADD', KEYS[3], retryAt, member)
  statsAdd(KEYS[5], 'w', 1, now)
  statsSettle(KEYS[5], ARGV[5])
  redis.call('HINCRBY', KEYS[6], 'q', 1)
  redis.call(PUBLISH, ARGV[9], ARGV[10])
  redis.call(PUBLISH, ARGV[11], retryAt)
  return FINISH_RETRY_SCHEDULED
end
local overCap = deadLetter(KEYS[1], ARGV[1], ARGV[10], KEYS[4], ARGV[8], ARGV[14], KEYS[5], KEYS[6], PUBLISH, ARGV[9], now)
statsSettle(KEYS[5], ARGV[5])
if overCap then
  return FINISH_DEAD_OVER_CAP
end
return FINISH_DEAD
