-- KEYS[4] session key. ARGV: id, ttl_us, lifetime_us, key base, mode ('get' | 'touch').
-- Renews the sliding TTL and the LRU position. 'get' returns {value, created, now},
-- 'touch' returns 1; both return false when the session does not exist. The birth
-- time comes from the session's own header, so a lost index entry cannot restart it.
local id, ttl, lifetime, base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local get = ARGV[5] == 'get'
local value, born
if get then
  value = redis.call('GET', KEYS[4])
  if not value then
    return false
  end
  local _
  _, born = parse_header(value)
end
local now = now_us()
if not born and (lifetime > 0 or get) then
  born = tonumber(redis.call('ZSCORE', BORN, id))
  if not born then
    local head = value or peek(KEYS[4])
    if not head then
      return false
    end
    local _
    _, born = parse_header(head)
    born = born or now
    redis.call('ZADD', BORN, fmt(born), id)
  end
end
local px = ttl
if born then
  px = pttl_for(now, born, ttl, lifetime)
  if px <= 0 then
    remove(base, {id})
    return false
  end
end
-- PEXPIRE answers 0 for a missing key: the existence check comes for free.
if redis.call('PEXPIRE', KEYS[4], px_ms(px)) == 0 then
  return false
end
redis.call('ZADD', LRU, fmt(now), id)
note_ttl(ttl)
if get then
  return {value, born or now, now}
end
return 1
