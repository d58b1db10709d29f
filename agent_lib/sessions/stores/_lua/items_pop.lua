-- Remove and return the newest item of a session, renewing it. KEYS[4] session key,
-- KEYS[5] its item list. ARGV: id, ttl_us, lifetime_us, key base, item overhead.
-- Returns the item, or false when the session is gone or has no items.
local id, ttl, lifetime, base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', KEYS[4]) == 0 then
  return false
end
local now = now_us()
local born = tonumber(redis.call('ZSCORE', BORN, id)) or now
local px = pttl_for(now, born, ttl, lifetime)
if px <= 0 then
  remove(base, {id})
  return false
end
redis.call('PEXPIRE', KEYS[4], px_ms(px))
redis.call('ZADD', LRU, fmt(now), id)
local item = redis.call('RPOP', KEYS[5])
if item then
  local freed = #item + tonumber(ARGV[5])
  redis.call('HINCRBY', SIZES, id, -freed)
  redis.call('HINCRBY', SIZES, TOTAL, -freed)
end
return item
