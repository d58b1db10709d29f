-- One step of listing the live sessions whose id starts with a prefix
-- (agent_lib.sessions.stores.entries' session_ids): a ZSCAN step over the creation set,
-- keeping the ids touched within the TTL and not past the lifetime (count.lua's rule).
-- ARGV: ttl_us, lifetime_us, cursor, MATCH pattern, COUNT. Returns {next cursor, ids}.
local ttl, lifetime = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_us()
local step = redis.call('ZSCAN', BORN, ARGV[3], 'MATCH', ARGV[4], 'COUNT', ARGV[5])
local ids = {}
local found = step[2]
for i = 1, #found, 2 do
  local id, born = found[i], tonumber(found[i + 1])
  local seen = tonumber(redis.call('ZSCORE', LRU, id))
  if seen and seen > now - ttl and (lifetime == 0 or born > now - lifetime) then
    ids[#ids + 1] = id
  end
end
return {step[1], ids}
