-- KEYS[4] session key. ARGV: id, ttl_us, lifetime_us, key base, mode ('get' | 'touch').
-- Renews the sliding TTL and the LRU position. 'get' returns {payload, created, now},
-- 'touch' returns 1; both return false when the session does not exist.
local id, ttl, lifetime, base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local get = ARGV[5] == 'get'
local payload
if get then
  payload = redis.call('GET', KEYS[4])
  if not payload then
    return false
  end
end
local now = now_us()
local born = now
if get or lifetime > 0 then
  born = tonumber(redis.call('ZSCORE', BORN, id))
  if not born then
    if not get and redis.call('EXISTS', KEYS[4]) == 0 then
      return false
    end
    born = now
    redis.call('ZADD', BORN, fmt(now), id)
  end
end
local px = pttl_for(now, born, ttl, lifetime)
if px <= 0 then
  remove(base, {id})
  return false
end
-- PEXPIRE answers 0 for a missing key: the existence check comes for free.
if redis.call('PEXPIRE', KEYS[4], px_ms(px)) == 0 then
  return false
end
redis.call('ZADD', LRU, fmt(now), id)
note_ttl(ttl)
if get then
  return {payload, born, now}
end
return 1
