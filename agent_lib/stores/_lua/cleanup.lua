-- One cleanup batch. ARGV: key base, ttl_us, lifetime_us, max_sessions, max_memory,
-- batch, idle offset, first batch of the run (1/0). Candidates are chosen and removed inside this one script, by
-- the server's clock: a session touched before the script runs has a fresh score and
-- is not chosen, and nothing can touch it while the script runs.
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

local idle = redis.call('ZRANGEBYSCORE', LRU, '-inf', fmt(now - ttl), 'LIMIT', offset, budget)
-- One variadic EXISTS per chunk; only a chunk with survivors is checked key by key.
local gone = {}
for first = 1, #idle, CHUNK do
  local last = math.min(first + CHUNK - 1, #idle)
  local keys = {}
  for i = first, last do
    keys[#keys + 1] = base .. idle[i]
  end
  local alive = redis.call('EXISTS', unpack(keys))
  for i = first, last do
    if alive == 0 or redis.call('EXISTS', keys[i - first + 1]) == 0 then
      gone[#gone + 1] = idle[i]
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
