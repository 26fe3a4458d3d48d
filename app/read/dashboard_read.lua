-- Read the live generation of one dashboard partition in one round trip.
-- KEYS[1]: the partition's pointer key. ARGV[1..4]: the partition's key templates (counters,
-- by_day, top_skus, checkpoint) from app/kernel/readmodels.py, where ARGV[5] stands for the
-- generation. All of them share the partition's hash tag (one Redis Cluster slot).
local gen = redis.call('GET', KEYS[1])
if not gen then return {false} end
local function key(i) return (string.gsub(ARGV[i], ARGV[5], gen)) end
return {
  gen,
  redis.call('HGETALL', key(1)),
  redis.call('HGETALL', key(2)),
  redis.call('ZRANGE', key(3), 0, -1, 'WITHSCORES'),
  redis.call('HMGET', key(4), 'tx', 'position'),
}
