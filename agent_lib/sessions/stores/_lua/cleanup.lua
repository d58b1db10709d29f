-- One cleanup batch, first half: index keys only. ARGV: ttl_us, lifetime_us,
-- max_sessions, max_memory, batch, idle offset, first batch of the run (1/0), check
-- every entry against its key (1/0). By the server's clock:
-- 1. idle: index entries past the TTL whose key Redis has certainly expired (last access
--    older than the longest TTL any writer used) are dropped here, unless they have an
--    item list (its key must be declared: they become candidates); the others are
--    candidates, and `offset` (kept so far in this run) keeps later batches from
--    rescanning those whose key lives on (written with a longer TTL);
-- 2. lifetime: sessions created more than max_lifetime ago are candidates;
-- 3. caps: the least recently used are candidates while over max_sessions/max_memory;
-- 4. check: when Redis has evicted keys since the last check (INFO stats evicted_keys,
--    or asked to), every entry is a candidate once, newest first, a slice per batch.
-- Candidates are removed by cleanup_keys.lua, which declares their keys and re-checks
-- each. The first batch also reports what writes removed since the last run.
-- Returns {scanned, expired, evicted by writes, expired by writes, freed, done,
-- bytes freed by writes, then kind, id, LRU score for each candidate}.
local ttl, lifetime = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_sessions, max_memory, budget = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local offset = tonumber(ARGV[6])
local now = now_us()
local w_evicted, w_expired, w_bytes = 0, 0, 0
if ARGV[7] == '1' then
  local noted = redis.call('HMGET', SIZES, EVICTED, DROPPED, EVICTED_BYTES)
  w_evicted, w_expired = tonumber(noted[1] or '0'), tonumber(noted[2] or '0')
  w_bytes = tonumber(noted[3] or '0')
  if redis.call('HEXISTS', SIZES, SWEEP) == 0 then
    local evictions = string.match(redis.call('INFO', 'stats'), 'evicted_keys:(%d+)') or '0'
    if ARGV[8] == '1' or evictions ~= (redis.call('HGET', SIZES, SEEN) or '0') then
      redis.call('HSET', SIZES, SWEEP, 0, SEEN, evictions)
    end
  end
end

local out, chosen = {}, {}
local function choose(kind, id, score)
  if not chosen[id] then
    chosen[id] = true
    out[#out + 1] = kind
    out[#out + 1] = id
    out[#out + 1] = score
  end
end

-- Keys last accessed before `certain` have expired whatever TTL their writer used
-- (2 ms of margin for PX rounding and the script's frozen clock). With no TTL noted
-- (no writer since the index began), every key is checked.
local written = tonumber(redis.call('HGET', SIZES, TTL_MAX) or '0')
local certain = -1
if written > 0 then
  certain = now - 2000 - math.max(ttl, written)
end
local flat = redis.call(
  'ZRANGEBYSCORE', LRU, '-inf', fmt(now - ttl), 'WITHSCORES', 'LIMIT', offset, budget
)
local idle = #flat / 2
local gone, unsure = {}, {}
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) < certain then
    gone[#gone + 1] = i
  else
    unsure[#unsure + 1] = i
  end
end
-- A session with an item list goes by the second half, which declares the list.
if #gone > 0 and tonumber(redis.call('HGET', SIZES, LISTED) or '0') > 0 then
  local marks = {}
  for j, i in ipairs(gone) do
    marks[j] = MARK .. flat[i]
  end
  local listed, plain = {}, {}
  each_chunk(marks, function(...)
    for _, m in ipairs(redis.call('HMGET', SIZES, ...)) do
      listed[#listed + 1] = m
    end
  end)
  for j, i in ipairs(gone) do
    if listed[j] then
      unsure[#unsure + 1] = i
    else
      plain[#plain + 1] = flat[i]
    end
  end
  gone = plain
else
  for j, i in ipairs(gone) do
    gone[j] = flat[i]
  end
end
local freed = w_bytes
if #gone > 0 then
  local ranks = false
  if #gone == idle then
    ranks = offset
  end
  freed = freed + drop_index(gone, ranks)
end
local scanned = idle
budget = budget - idle

if lifetime > 0 and budget > 0 then
  local ended = redis.call('ZRANGEBYSCORE', BORN, '-inf', fmt(now - lifetime), 'LIMIT', 0, budget)
  for _, id in ipairs(ended) do
    choose('l', id, 0)
  end
  scanned, budget = scanned + #ended, budget - #ended
end
for _, i in ipairs(unsure) do
  choose('i', flat[i], flat[i + 1])
end

if budget > 0 and over_caps(max_sessions, max_memory, 0, 0) then
  local n = least_recent(max_sessions, max_memory, 0, 0, budget, nil, function(id, score)
    choose('e', id, score)
  end)
  scanned, budget = scanned + n, budget - n
end

local sweep = redis.call('HGET', SIZES, SWEEP)
if sweep and budget > 0 then
  local from = tonumber(sweep)
  local ids = redis.call('ZREVRANGE', LRU, from, from + budget - 1)
  if #ids < budget then
    redis.call('HDEL', SIZES, SWEEP)
  else
    redis.call('HSET', SIZES, SWEEP, from + #ids)
  end
  for _, id in ipairs(ids) do
    choose('c', id, 0)
  end
  scanned, budget = scanned + #ids, budget - #ids
end

local done = 0
if budget > 0 then
  done = 1
end
return {scanned, #gone, w_evicted, w_expired, freed, done, w_bytes, unpack(out)}
