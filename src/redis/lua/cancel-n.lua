--[[
  cancel: cancel some of one user's tasks that have not started (in its
  queue, or delayed in the partition's delayed set) or wait to retry (in the
  partition's retries set), atomically.
  Each one leaves its queue, the delayed set or the retry schedule; its record ends cancelled,
  finished now, its payload dropped, and expires the retention after, as a
  succeeded task's does. When a queue's head left, the next task takes its
  place in the heads hash and the due-users set, keeping the user's due
  moment, or the user leaves both when its queue is empty (includes/heads);
  a parked user (includes/parked) goes back to the due users, to be routed
  by its new head;
  one that left its queue is counted out of its priority level
  (includes/priority).
  The queued total (q) counts each one down, the stats' waiting-to-retry
  gauge (w) each retry, the delayed gauge (n) each delayed one, and the
  user's and the partition's c (cancelled, only ever grows) each one up
  (includes/cancelled); one progress message tells watchers. A running task
  is marked (FIELD_CANCEL_REQUESTED): its attempt's end then ends it
  cancelled, neither retried nor dead-lettered (finish, release, or claim
  recovering its lease), and counted in c there. A task that is finished, already cancelled, gone
  or another user's is left as it is. CancelTask sends one task, PurgeQueue
  a batch of the queue's ids (each record is a declared key, so the caller
  reads the ids first).

  KEYS[1]  the user's queue list
  KEYS[2]  due-users sorted set
  KEYS[3]  heads hash (user id -> head task id)
  KEYS[4]  retries sorted set
  KEYS[5]  the user's stats hash
  KEYS[6]  totals hash
  KEYS[7]  delayed-tasks sorted set
  KEYS[8]  parked-users sorted set
  KEYS[9]  parked-users hash
  then per task (ARGV order): its hash
  ARGV[1]  user id
  ARGV[2]  progress channel
  ARGV[3]  "SPUBLISH" on a Redis Cluster (sharded pub/sub), else "PUBLISH"
  ARGV[4]  retention, seconds: how long a cancelled task's record is kept,
           and the user's stats hash once nothing of it runs or waits to retry
  ARGV[5]  cancel channel: a marked running task's id is published there, so
           the process running it aborts its handler
  ARGV[6]  wake channel (a rerouted user is due now)
  then the task ids, one per task hash
  Returns  one code per task, in order: CANCEL_CANCELLED, CANCEL_ALREADY_CANCELLED,
           CANCEL_CANCEL_REQUESTED (running, marked), CANCEL_SUCCEEDED, CANCEL_DEAD,
           CANCEL_EXPIRED or CANCEL_NOT_FOUND
           (src/redis/reply-codes.ts)
]]
--- @include "time"
--- @include "user-stats"
--- @include "task-fields"
--- @include "heads"
--- @include "cancelled"
--- @include "priority"
--- @include "reply-codes"
--- @include "parked"

local userId, PUBLISH, retention = ARGV[1], ARGV[3], ARGV[4]
local now = currentMs()
local codes = {}
local cancelled, fromQueue, fromRetries, fromDelayed = 0, 0, 0, 0
-- Left as they are; the one state not named here is dead (includes/dead-letter writes it).
local OTHER_STATES = {
  [STATE_CANCELLED] = CANCEL_ALREADY_CANCELLED,
  [STATE_SUCCEEDED] = CANCEL_SUCCEEDED,
  [STATE_EXPIRED] = CANCEL_EXPIRED,
}
for i = 7, #ARGV do
  local taskId, record = ARGV[i], KEYS[i + 3]
  local fields = redis.call('HMGET', record, FIELD_USER, FIELD_STATE, FIELD_PRIORITY)
  local code
  if fields[1] ~= userId then
    code = CANCEL_NOT_FOUND
  elseif fields[2] == STATE_QUEUED or fields[2] == STATE_FAILED then
    if fields[2] == STATE_QUEUED then
      local removed = redis.call('LREM', KEYS[1], 1, taskId)
      if removed == 0 then
        -- Not in the queue yet: delayed.
        fromDelayed = fromDelayed + redis.call('ZREM', KEYS[7], taskId .. ':' .. userId)
      end
      if removed > 0 then
        leftQueue(KEYS[5], tonumber(fields[3] or '0'), now)
      end
      fromQueue = fromQueue + removed
    else
      fromRetries = fromRetries + redis.call('ZREM', KEYS[4], taskId .. ':' .. userId)
    end
    endCancelled(record, now, retention, KEYS[5], KEYS[6])
    cancelled = cancelled + 1
    code = CANCEL_CANCELLED
  elseif fields[2] == STATE_RUNNING then
    -- Its attempt ends it cancelled (finish, release, or claim when its lease runs out).
    redis.call('HSET', record, FIELD_CANCEL_REQUESTED, 1)
    redis.call(PUBLISH, ARGV[5], taskId)
    code = CANCEL_CANCEL_REQUESTED
  else
    code = OTHER_STATES[fields[2]] or CANCEL_DEAD
  end
  codes[#codes + 1] = code
end
if fromQueue > 0 then
  headChanged(KEYS[1], KEYS[3], KEYS[2], userId)
  rerouteIfParked(KEYS[1], KEYS[8], KEYS[9], KEYS[2], userId, now, PUBLISH, ARGV[6])
end
if fromRetries > 0 then
  statsAdd(KEYS[5], 'w', -fromRetries, now)
end
if fromDelayed > 0 then
  statsAdd(KEYS[5], 'n', -fromDelayed, now)
end
if fromQueue + fromRetries + fromDelayed > 0 then
  statsSettle(KEYS[5], retention)
end
if fromQueue + fromRetries + fromDelayed > 0 then
  redis.call('HINCRBY', KEYS[6], 'q', -(fromQueue + fromRetries + fromDelayed))
end
if cancelled > 0 then
  -- endCancelled counted each one in c.
  statsSettle(KEYS[5], retention)
  redis.call(PUBLISH, ARGV[2], userId)
end
return codes
