-- Dry run. ARGV: ttl_us, lifetime_us, max_sessions, max_memory. Counts from the
-- sorted sets only (O(log n)); lifetime_ended may include sessions also counted idle.
-- Returns {indexed, expired, lifetime_ended, evicted, bytes}.
local ttl, lifetime = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_sessions, max_memory = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_us()
local card = redis.call('ZCARD', LRU)
local expired = redis.call('ZCOUNT', LRU, '-inf', fmt(now - ttl))
local ended = 0
if lifetime > 0 then
  ended = redis.call('ZCOUNT', BORN, '-inf', fmt(now - lifetime))
end
local total = tonumber(redis.call('HGET', SIZES, TOTAL) or '0')
local avg = 0
if card > 0 then
  avg = total / card
end
local remaining = math.max(card - expired - ended, 0)
local evicted = 0
if max_sessions > 0 and remaining > max_sessions then
  evicted = remaining - max_sessions
end
local left = total - (expired + ended + evicted) * avg
if max_memory > 0 and avg > 0 and left > max_memory then
  evicted = evicted + math.ceil((left - max_memory) / avg)
end
return {card, expired, ended, evicted, fmt((expired + ended + evicted) * avg)}
