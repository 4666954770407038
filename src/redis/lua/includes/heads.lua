--[[
  heads: the heads hash (user id -> head task id) and the due-users set
  follow a user's queue. Every script that changes which task is at the head
  of a queue other than by pushing one in front (claim takes it, cancel
  removes it) calls headChanged, so the next task takes its place, keeping
  the user's due moment, or the user leaves both when its queue is empty.
]]

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
