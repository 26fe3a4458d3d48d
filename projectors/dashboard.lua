-- Apply a batch of dashboard deltas and move the checkpoint, atomically, after checking that
-- the store is where the batch starts.
-- All keys are one partition's (one hash tag, so one Redis Cluster slot); their names come
-- from app/kernel/readmodels.py.
-- KEYS: 1 counters (hash), 2 by_day (hash), 3 top_skus (zset), 4 checkpoint (hash), 5 pointer
-- ARGV: 1 JSON [[tx, position, [[key_index, field, delta], ...]], ...], 2 pub/sub channel,
--       3 this generation, 4 "1" when readers must see it (the pointer must name it),
--       5 tx and 6 position where the batch starts, 7 the log identity,
--       8 the writer's fencing token ("" when it holds no claim: a rebuild's own generation)
-- Answers {"applied", n}, or without changing anything: {"gone"} (no pointer), {"moved", gen},
-- {"fenced", token} (a newer claim wrote here), {"foreign"} (a checkpoint of another log),
-- {"rewound", tx, position} (the store is behind).
-- An event at or below the stored checkpoint is skipped, so a replayed batch changes nothing.
local function newer(tx, pos, cp_tx, cp_pos)
  if not cp_tx then return true end
  if #tx ~= #cp_tx then return #tx > #cp_tx end
  if tx ~= cp_tx then return tx > cp_tx end
  if #pos ~= #cp_pos then return #pos > #cp_pos end
  return pos > cp_pos
end

if ARGV[4] == '1' then
  local live = redis.call('GET', KEYS[5])
  if not live then return {'gone'} end
  if live ~= ARGV[3] then return {'moved', live} end
end
-- Fencing: the highest token seen is kept with the checkpoint; an older one may not write.
if ARGV[8] ~= '' then
  local fence = tonumber(redis.call('HGET', KEYS[4], 'fence') or '0')
  if tonumber(ARGV[8]) < fence then return {'fenced', tostring(fence)} end
  if tonumber(ARGV[8]) > fence then redis.call('HSET', KEYS[4], 'fence', ARGV[8]) end
end
local stored = redis.call('HMGET', KEYS[4], 'tx', 'position', 'log')
local cp_tx, cp_pos = stored[1], stored[2]
if stored[3] and stored[3] ~= ARGV[7] then return {'foreign'} end
if newer(ARGV[5], ARGV[6], cp_tx or '0', cp_pos or '0') then
  return {'rewound', cp_tx or '0', cp_pos or '0'}
end
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
  redis.call('HSET', KEYS[4], 'tx', cp_tx, 'position', cp_pos, 'log', ARGV[7])
  if ARGV[4] == '1' then redis.call('PUBLISH', ARGV[2], cp_pos) end
end
return {'applied', applied}
