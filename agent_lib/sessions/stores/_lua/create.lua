-- KEYS[4] session key. ARGV: id, payload, size, ttl_us, lifetime_us, max_sessions,
-- max_memory, key base. Returns {1, now, evicted}, {0, existing payload} or {-1}.
local id, size = ARGV[1], tonumber(ARGV[3])
local ttl, lifetime = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_sessions, max_memory, base = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local existing = redis.call('GET', KEYS[4])
if existing then
  return {0, existing}
end
if max_memory > 0 and size > max_memory then
  return {-1}
end
if redis.call('HEXISTS', SIZES, id) == 1 then
  remove(base, {id})
end
local evicted = make_room_for_write(base, max_sessions, max_memory, 1, size, false)
local now = now_us()
redis.call('SET', KEYS[4], ARGV[2], 'PX', px_ms(pttl_for(now, now, ttl, lifetime)))
note_ttl(ttl)
redis.call('ZADD', LRU, fmt(now), id)
redis.call('ZADD', BORN, fmt(now), id)
redis.call('HSET', SIZES, id, size)
redis.call('HINCRBY', SIZES, TOTAL, size)
return {1, now, evicted}
