--[[
  heads: the heads hash (user id -> head task id) and the due-users set
  follow a user's queue.
  - scheduleNewHead: a user whose queue was empty has a head task again (a
    Submit queued one, or dead letters were requeued). The user joins the
    partition's due users at the moment its windows allow a start, with its
    head task named in the heads hash (so a claim can declare it), and the
    drainers are woken for that moment.
  - headChanged: every script that changes which task is at the head of a
    queue other than by pushing one in front (claim takes it, cancel removes
    it) calls it, so the next task takes its place, keeping the user's due
    moment, or the user leaves both when its queue is empty.
]]

-- publish is PUBLISH or SPUBLISH (a Cluster's sharded pub/sub); due in ms.
local function scheduleNewHead(dueUsers, heads, userId, taskId, due, publish, wakeChannel)
  redis.call('ZADD', dueUsers, due, userId)
  redis.call('HSET', heads, userId, taskId)
  redis.call(publish, wakeChannel, due)
end

-- Keeps the heads hash and due-users set in step with the user's queue after its head changed.
local function headChanged(queue, heads, due, userId)
  local head = redis.call('LINDEX', queue, 0)
  if head then
    redis.call('HSET', heads, userId, head)
  else
    redis.call('HDEL', heads, userId)
    redis.call('ZREM', due, userId)
  end
end
