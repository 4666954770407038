--[[
  queue-head: a user whose queue was empty has a head task again (a Submit
  queued one, or dead letters were requeued). The user joins the partition's
  due users at the moment its windows allow a start, with its head task named
  in the heads hash (so a claim can declare it), and the drainers are woken
  for that moment.
]]

-- publish is PUBLISH or SPUBLISH (a Cluster's sharded pub/sub); due in ms.
local function scheduleNewHead(dueUsers, heads, userId, taskId, due, publish, wakeChannel)
  redis.call('ZADD', dueUsers, due, userId)
  redis.call('HSET', heads, userId, taskId)
  redis.call(publish, wakeChannel, due)
end
