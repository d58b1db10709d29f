-- One cleanup batch. ARGV: key base, ttl_us, lifetime_us, max_sessions, max_memory,
-- batch, idle offset, first batch of the run (1/0). Candidates are chosen and removed
-- inside this one script, by the server's clock: a session touched before the script
-- runs has a fresh score and is not chosen, and nothing can touch it while it runs.
-- 1. idle: index entries past the TTL whose key Redis already expired are dropped; a
--    key that still exists (written with a longer TTL) is left alone and skipped, and
--    `offset` (skipped so far in this run) keeps later batches from rescanning it;
-- 2. lifetime: sessions created more than max_lifetime ago are ended (UNLINK);
-- 3. caps: least-recently-used sessions are evicted while over max_sessions/max_memory.
-- Returns {scanned, expired, lifetime_ended, evicted, bytes_freed, done, skipped}.
local base, ttl, lifetime = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_sessions, max_memory, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local offset = tonumber(ARGV[7])
local now = now_us()
local scanned, freed, f = 0, 0, 0
local by_writes = 0
if ARGV[8] == '1' then
  -- 0. report (and reset) what writes evicted at the caps since the last cleanup
  local noted = redis.call('HMGET', SIZES, EVICTED, EVICTED_BYTES)
  by_writes, freed = tonumber(noted[1] or '0'), tonumber(noted[2] or '0')
  redis.call('HDEL', SIZES, EVICTED, EVICTED_BYTES)
end

-- Keys last accessed before `certain` have expired whatever TTL their writer used
-- (2 ms of margin for PX rounding and the script's frozen clock); entries between that
-- and the policy's own TTL are checked key by key, and skipped while their key lives.
-- With no TTL noted (no writer since the index began), every key is checked.
local written = tonumber(redis.call('HGET', SIZES, TTL_MAX) or '0')
local certain = -1
if written > 0 then
  certain = now - 2000 - math.max(ttl, written)
end
local flat = redis.call(
  'ZRANGEBYSCORE', LRU, '-inf', fmt(now - ttl), 'WITHSCORES', 'LIMIT', offset, budget
)
local idle, gone = {}, {}
for first = 1, #flat, 2 * CHUNK do
  local keys, ids = {}, {}
  for i = first, math.min(first + 2 * CHUNK - 1, #flat), 2 do
    local id = flat[i]
    idle[#idle + 1] = id
    if tonumber(flat[i + 1]) < certain then
      gone[#gone + 1] = id
    else
      keys[#keys + 1] = base .. id
      ids[#ids + 1] = id
    end
  end
  -- One variadic EXISTS per chunk; only a chunk with survivors is checked key by key.
  if #keys > 0 then
    local alive = redis.call('EXISTS', unpack(keys))
    for i, key in ipairs(keys) do
      if alive == 0 or redis.call('EXISTS', key) == 0 then
        gone[#gone + 1] = ids[i]
      end
    end
  end
end
if #gone > 0 then
  local ranks = false
  if #gone == #idle then
    ranks = offset
  end
  freed = freed + drop_index(gone, ranks)
end
scanned, budget = scanned + #idle, budget - #idle

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
return {scanned, #gone, #ended, evicted + by_writes, freed, done, #idle - #gone}
