-- Read the newest items of a session and renew it, like access.lua. KEYS[4] session key,
-- KEYS[5] its item list. ARGV: id, ttl_us, lifetime_us, key base, limit (negative,
-- or at least the list's length: all; kept as the caller's digits, never formatted),
-- with payload (1/0), renew (1/0: 0 reads without renewing, for listings). LRANGE from
-- the tail costs O(limit), not O(length). The birth time comes from the session's own
-- header, like access.lua's.
-- KEYS[6..]: shared records to read with it, each as its two hashes (common.lua).
-- Returns {value (header and payload) or '', created, now, {items...}, version, then
-- each record as read_record returns it, without owners} or false when the session is gone; the caller strips the
-- header.
local id, ttl, lifetime, base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local limit = tonumber(ARGV[5])
local value
if ARGV[6] == '1' then
  value = redis.call('GET', KEYS[4])
else
  value = peek(KEYS[4])
end
if not value then
  return false
end
local now = now_us()
local version, born = parse_header(value)
if not born then
  born = tonumber(redis.call('ZSCORE', BORN, id))
  if not born then
    born = now
    redis.call('ZADD', BORN, fmt(now), id)
  end
end
local px = pttl_for(now, born, ttl, lifetime)
if px <= 0 then
  remove(base, {id})
  return false
end
if ARGV[7] ~= '0' then
  redis.call('PEXPIRE', KEYS[4], px_ms(px))
  redis.call('ZADD', LRU, fmt(now), id)
  note_ttl(ttl)
end
local items = {}
if limit < 0 or (limit > 0 and limit >= redis.call('LLEN', KEYS[5])) then
  items = redis.call('LRANGE', KEYS[5], 0, -1)
elseif limit > 0 then
  items = redis.call('LRANGE', KEYS[5], fmt(-limit), -1)
end
if ARGV[6] ~= '1' then
  value = ''
end
local out = {value, born, now, items, version or 0}
for k = 6, #KEYS, 2 do
  out[#out + 1] = read_record(KEYS[k], KEYS[k + 1], false)
end
return out
