-- KEYS[4] session key. ARGV: id, ttl_us, lifetime_us, key base, mode ('get' | 'touch').
-- Renews the sliding TTL and the LRU position. Returns {payload|'', created, now} or false.
local id, ttl, lifetime, base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local payload
if ARGV[5] == 'get' then
  payload = redis.call('GET', KEYS[4])
  if not payload then
    return false
  end
else
  if redis.call('EXISTS', KEYS[4]) == 0 then
    return false
  end
  payload = ''
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
redis.call('PEXPIRE', KEYS[4], px_ms(px))
redis.call('ZADD', LRU, fmt(now), id)
return {payload, born, now}
