-- ARGV: ttl_us, lifetime_us. Live sessions: touched within the TTL and not past the
-- lifetime. Cost grows with the sessions awaiting cleanup, not with live ones.
local ttl, lifetime = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_us()
local idle_cut = now - ttl
local live = redis.call('ZCOUNT', LRU, '(' .. fmt(idle_cut), '+inf')
if lifetime > 0 then
  local ended = redis.call('ZRANGEBYSCORE', BORN, '-inf', fmt(now - lifetime))
  for _, id in ipairs(ended) do
    local seen = tonumber(redis.call('ZSCORE', LRU, id))
    if seen and seen > idle_cut then
      live = live - 1
    end
  end
end
return live
