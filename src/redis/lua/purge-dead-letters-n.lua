--[[
  purge-dead-letters: deletes dead letters of one user: each id given that is
  on the list leaves it and its record is deleted (includes/dead-letter); an
  id not on the list is reported. The user's d and the partition's d count
  dead-letterings ever, so they stay.

  KEYS[1]   the user's dead-letter list
  KEYS[2..] the record (task hash) of each id in ARGV, in that order
  ARGV[1]   the first task id to delete, ARGV[2] the second, and so on
  Returns   {purged, id not found, id not found, ...}
]]
--- @include "dead-letter"

local purged, notFound = 0, {}
for i = 1, #ARGV do
  if takeDeadLetter(KEYS[1], ARGV[i]) then
    redis.call('DEL', KEYS[i + 1])
    purged = purged + 1
  else
    notFound[#notFound + 1] = ARGV[i]
  end
end
local out = {purged}
for _, id in ipairs(notFound) do
  out[#out + 1] = id
end
return out
