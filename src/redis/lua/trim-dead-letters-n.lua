--[[
  trim-dead-letters: the second step of trimming a user's dead-letter list at
  its cap (why in two steps: includes/dead-letter). The caller read the ids
  past the cap and declares their records; those still past it leave the
  list, their records are deleted, and the partition's totals count them
  (dx). An id no longer past the cap (the list changed meanwhile) is left;
  the list's next trim sees it.

  KEYS[1]   the user's dead-letter list
  KEYS[2]   totals hash
  KEYS[3..] the record (task hash) of each id in ARGV[2..], in that order
  ARGV[1]   dead-letter list cap
  ARGV[2..] the task ids read past the cap
  Returns   how many dead letters were dropped
]]
--- @include "dead-letter"

local ids, taskKeys = {}, {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
  taskKeys[#taskKeys + 1] = KEYS[i + 1]
end
return trimDeadLetters(KEYS[1], ARGV[1], KEYS[2], ids, taskKeys)
