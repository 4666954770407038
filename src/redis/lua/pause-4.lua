--[[
  pause: pauses one user's queue. The user joins the paused-users set and
  leaves the due users, so no drainer claims its head; admit queues its new
  tasks without making it due, and claim parks it again if anything else
  makes it due meanwhile (a release, a retry coming due, a recovered lease,
  a requeue). Running tasks are left to run on. Idempotent.

  KEYS[1]   paused-users set
  KEYS[2]   due-users sorted set
  KEYS[3]   the user's queue list
  KEYS[4]   the user's stats hash
  ARGV[1]   user id
  ARGV[2]   progress channel (the user id is published when its counts change)
  ARGV[3]   "SPUBLISH" on a Redis Cluster (sharded pub/sub), else "PUBLISH"
  Returns   {tasks waiting to start: queued plus waiting to retry}
]]

local userId = ARGV[1]
redis.call('SADD', KEYS[1], userId)
redis.call('ZREM', KEYS[2], userId)
redis.call(ARGV[3], ARGV[2], userId)
local waiting = tonumber(redis.call('HGET', KEYS[4], 'w') or '0')
return {redis.call('LLEN', KEYS[3]) + math.max(0, waiting)}
