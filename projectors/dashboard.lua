-- Apply a batch of dashboard deltas and move the checkpoint, atomically.
-- KEYS: 1 counters (hash), 2 by_day (hash), 3 top_skus (zset), 4 checkpoint (hash)
-- ARGV: 1 JSON [[tx, position, [[key_index, field, delta], ...]], ...], 2 pub/sub channel
-- An event at or below the stored checkpoint is skipped, so a replayed batch changes nothing.
local function newer(tx, pos, cp_tx, cp_pos)
  if not cp_tx then return true end
  if #tx ~= #cp_tx then return #tx > #cp_tx end
  if tx ~= cp_tx then return tx > cp_tx end
  if #pos ~= #cp_pos then return #pos > #cp_pos end
  return pos > cp_pos
end

local stored = redis.call('HMGET', KEYS[4], 'tx', 'position')
local cp_tx, cp_pos = stored[1], stored[2]
local applied = 0
for _, event in ipairs(cjson.decode(ARGV[1])) do
  local tx, pos = event[1], event[2]
  if newer(tx, pos, cp_tx, cp_pos) then
    for _, op in ipairs(event[3]) do
      if op[1] == 3 then
        redis.call('ZINCRBY', KEYS[3], op[3], op[2])
      else
        redis.call('HINCRBY', KEYS[op[1]], op[2], op[3])
      end
    end
    cp_tx, cp_pos = tx, pos
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('HSET', KEYS[4], 'tx', cp_tx, 'position', cp_pos)
  redis.call('PUBLISH', ARGV[2], cp_pos)
end
return applied
