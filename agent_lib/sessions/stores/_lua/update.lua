-- KEYS[4] session key. ARGV: id, payload, size, ttl_us, lifetime_us, max_memory, key base.
-- Returns {1, created, now, evicted}, {-1} when over max_memory alone, or false.
local id, size = ARGV[1], tonumber(ARGV[3])
local ttl, lifetime = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_memory, base = tonumber(ARGV[6]), ARGV[7]
if redis.call('EXISTS', KEYS[4]) == 0 then
  return false
end
if max_memory > 0 and size > max_memory then
  return {-1}
end
local now = now_us()
local born = tonumber(redis.call('ZSCORE', BORN, id))
if not born then
  born = now
  redis.call('ZADD', BORN, fmt(now), id)
end
local px = pttl_for(now, born, ttl, lifetime)
if px <= 0 then
  remove(base, {id})
  return false
end
local old = tonumber(redis.call('HGET', SIZES, id) or '0')
redis.call('SET', KEYS[4], ARGV[2], 'PX', px_ms(px))
note_ttl(ttl)
redis.call('ZADD', LRU, fmt(now), id)
redis.call('HSET', SIZES, id, size)
redis.call('HINCRBY', SIZES, TOTAL, size - old)
local evicted = make_room_for_write(base, 0, max_memory, 0, 0, id)
return {1, born, now, evicted}
