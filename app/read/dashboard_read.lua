-- Read the live dashboard generation in one round trip.
-- KEYS[1]: the pointer key; ARGV[1]: the namespace; ARGV[2]: how many top SKUs.
local gen = redis.call('GET', KEYS[1])
if not gen then return {false} end
local prefix = ARGV[1] .. ':dash:' .. gen
return {
  gen,
  redis.call('HGETALL', prefix .. ':counters'),
  redis.call('HGETALL', prefix .. ':by_day'),
  redis.call('ZREVRANGE', prefix .. ':top_skus', 0, tonumber(ARGV[2]) - 1, 'WITHSCORES'),
  redis.call('HMGET', prefix .. ':checkpoint', 'tx', 'position'),
}
