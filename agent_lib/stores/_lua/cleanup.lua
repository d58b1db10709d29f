-- One cleanup batch. ARGV: key base, ttl_ms, lifetime_ms, max_sessions, max_memory, batch.
-- Candidates are chosen and removed inside this one script, with the server's clock, so
-- a session touched before the script runs has a fresh score and is never chosen, and
-- one touched after it runs was not removed. Returns
-- {scanned, expired, lifetime_ended, evicted, bytes_freed, done}.
local base, ttl, lifetime = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_sessions, max_memory, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local scanned, freed = 0, 0

local idle = redis.call('ZRANGEBYSCORE', LRU, '-inf', fmt(now - ttl), 'LIMIT', 0, budget)
local f = remove(base, idle)
scanned, freed, budget = scanned + #idle, freed + f, budget - #idle

local ended = {}
if budget > 0 and lifetime > 0 then
  ended = redis.call('ZRANGEBYSCORE', BORN, '-inf', fmt(now - lifetime), 'LIMIT', 0, budget)
  f = remove(base, ended)
  scanned, freed, budget = scanned + #ended, freed + f, budget - #ended
end

local evicted, s = 0, 0
if budget > 0 then
  evicted, f, s, budget = make_room(base, max_sessions, max_memory, 0, 0, false, budget)
  scanned, freed = scanned + s, freed + f
end
local done = 0
if budget > 0 then
  done = 1
end
return {scanned, #idle, #ended, evicted, freed, done}
