-- One cleanup batch, second half: KEYS[4..] the candidates cleanup.lua chose, declared
-- in pairs of session key and item list (which goes with its session).
-- ARGV: ttl_us, lifetime_us, max_sessions, max_memory, key base, then kind and LRU
-- score of each candidate. Each is re-checked here, atomically:
-- 'i' idle: dropped if still idle and its key is gone; kept (and counted) if the key lives;
-- 'l' lifetime: ended if still past max_lifetime;
-- 'c' check: dropped if its key is gone (Redis evicted it);
-- 'e' evict: left alone if touched since it was chosen; dropped if dead; else evicted
--     while the namespace is still over a cap.
-- Returns {expired, lifetime_ended, evicted, bytes_freed, idle kept, still over a cap}.
local ttl, lifetime = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_sessions, max_memory, base = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local now = now_us()
local expired, ended, evicted, freed, kept, swept = 0, 0, 0, 0, 0, 0
local gone = {}
for k = 4, #KEYS, 2 do
  local key = KEYS[k]
  local id = string.sub(key, #base + 1)
  local kind, score = ARGV[6 + (k - 4)], ARGV[7 + (k - 4)]
  local seen = redis.call('ZSCORE', LRU, id)
  if seen then
    if kind == 'i' then
      if tonumber(seen) <= now - ttl then
        if redis.call('EXISTS', key) == 0 then
          gone[#gone + 1] = id
        else
          kept = kept + 1
        end
      end
    elseif kind == 'c' then
      if redis.call('EXISTS', key) == 0 then
        gone[#gone + 1] = id
        swept = swept + 1
      end
    else
      local born = tonumber(redis.call('ZSCORE', BORN, id))
      local past = lifetime > 0 and born ~= nil and born + lifetime <= now
      if kind == 'l' then
        if past then
          freed = freed + remove(base, {id})
          ended = ended + 1
        end
      elseif seen == score then
        if redis.call('EXISTS', key) == 0 then
          freed = freed + remove(base, {id})
          expired = expired + 1
        elseif past then
          freed = freed + remove(base, {id})
          ended = ended + 1
        elseif over_caps(max_sessions, max_memory, 0, 0) then
          freed = freed + remove(base, {id})
          evicted = evicted + 1
        end
      end
    end
  end
end
if #gone > 0 then
  freed = freed + remove(base, gone)
  expired = expired + #gone
end
if swept > 0 and redis.call('HEXISTS', SIZES, SWEEP) == 1 then
  redis.call('HINCRBY', SIZES, SWEEP, -swept)
end
local over = 0
if over_caps(max_sessions, max_memory, 0, 0) then
  over = 1
end
return {expired, ended, evicted, freed, kept, over}
