-- Shared prelude of every session script (prepended by agent_lib.sessions.stores.redis).
-- Times are microseconds. KEYS[1] last-access sorted set (LRU order and idle deadlines),
-- KEYS[2] creation sorted set (absolute lifetime), KEYS[3] hash of size estimates plus
-- the running '*total' field.
-- Every key carries the namespace's hash tag, so each script runs on one Cluster slot.
local LRU, BORN, SIZES = KEYS[1], KEYS[2], KEYS[3]
local TOTAL = '*total'
-- Evictions made by writes since the last cleanup, which reports and resets them.
local EVICTED, EVICTED_BYTES = '*evicted', '*evicted_bytes'
-- The longest idle TTL any writer has given a key of this namespace (us). A key's
-- expiry is never later than its last access plus this, so cleanup knows which index
-- entries point at keys Redis has certainly expired without asking for each key.
local TTL_MAX = '*ttl_max'

local function note_ttl(ttl)
  if ttl > tonumber(redis.call('HGET', SIZES, TTL_MAX) or '0') then
    redis.call('HSET', SIZES, TTL_MAX, string.format('%d', ttl))
  end
end

local function fmt(n)
  return string.format('%d', n)
end

-- Microseconds since the epoch (exact in a Lua double); numbers this large must be
-- passed to redis.call through fmt(), which keeps every digit.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Lua's C stack holds about 8000 values, so variadic calls take ids in chunks.
local CHUNK = 1000

local function each_chunk(list, fn)
  for first = 1, #list, CHUNK do
    fn(unpack(list, first, math.min(first + CHUNK - 1, #list)))
  end
end

-- A session's item list (agent_lib.sessions.stores.items) sits beside its key under the same tag,
-- has no TTL of its own and goes whenever the session's index entry goes.
local ITEMS = string.sub(LRU, 1, -4) .. 'i:'

local function unlink_items(ids)
  for first = 1, #ids, CHUNK do
    local keys = {}
    for i = first, math.min(first + CHUNK - 1, #ids) do
      keys[#keys + 1] = ITEMS .. ids[i]
    end
    redis.call('UNLINK', unpack(keys))
  end
end

-- Drop index entries of `ids` (and their item lists); returns the bytes they accounted for.
local function drop_index(ids, lru_ranks_from)
  local freed = 0
  each_chunk(ids, function(...)
    for _, s in ipairs(redis.call('HMGET', SIZES, ...)) do
      if s then
        freed = freed + tonumber(s)
      end
    end
    redis.call('ZREM', BORN, ...)
    redis.call('HDEL', SIZES, ...)
    if not lru_ranks_from then
      redis.call('ZREM', LRU, ...)
    end
  end)
  if lru_ranks_from then
    -- ids are exactly these consecutive ranks of LRU: one range removal is cheaper.
    redis.call('ZREMRANGEBYRANK', LRU, lru_ranks_from, lru_ranks_from + #ids - 1)
  end
  if freed ~= 0 then
    redis.call('HINCRBY', SIZES, TOTAL, -freed)
  end
  unlink_items(ids)
  return freed
end

-- Unlink sessions and drop their index entries; returns bytes freed and keys that existed.
local function remove(base, ids)
  if #ids == 0 then
    return 0, 0
  end
  local keys = {}
  for i, id in ipairs(ids) do
    keys[i] = base .. id
  end
  local existed = 0
  each_chunk(keys, function(...)
    existed = existed + redis.call('UNLINK', ...)
  end)
  return drop_index(ids, false), existed
end

-- Milliseconds for PEXPIRE/PX from microseconds, never zero.
local function px_ms(us)
  return fmt(math.max(1, math.ceil(us / 1000)))
end

local function pttl_for(now, born, ttl, lifetime)
  if lifetime > 0 then
    local left = born + lifetime - now
    if left < ttl then
      return left
    end
  end
  return ttl
end

-- Evict least-recently-used sessions (never `keep`) until `adding` more fit under
-- max_sessions and `extra` more bytes fit under max_memory, at most `budget` of them.
local function make_room(base, max_sessions, max_memory, adding, extra, keep, budget)
  local evicted, freed, scanned = 0, 0, 0
  if max_sessions > 0 then
    local over = redis.call('ZCARD', LRU) + adding - max_sessions
    if over > budget then
      over = budget
    end
    if over > 0 then
      local ids = redis.call('ZRANGE', LRU, 0, over)
      local chosen = {}
      for _, id in ipairs(ids) do
        if id ~= keep and #chosen < over then
          chosen[#chosen + 1] = id
        end
      end
      scanned = scanned + #ids
      local f = remove(base, chosen)
      evicted, freed, budget = evicted + #chosen, freed + f, budget - #chosen
    end
  end
  if max_memory > 0 then
    local total = tonumber(redis.call('HGET', SIZES, TOTAL) or '0')
    while total + extra > max_memory and budget > 0 do
      local ids = redis.call('ZRANGE', LRU, 0, 16)
      scanned = scanned + #ids
      local candidates = {}
      for _, id in ipairs(ids) do
        if id ~= keep then
          candidates[#candidates + 1] = id
        end
      end
      if #candidates == 0 then
        break
      end
      local sizes = redis.call('HMGET', SIZES, unpack(candidates))
      local chosen, acc = {}, 0
      for i, id in ipairs(candidates) do
        if total + extra - acc <= max_memory or #chosen >= budget then
          break
        end
        chosen[#chosen + 1] = id
        acc = acc + tonumber(sizes[i] or '0')
      end
      local f = remove(base, chosen)
      evicted, freed, budget = evicted + #chosen, freed + f, budget - #chosen
      total = tonumber(redis.call('HGET', SIZES, TOTAL) or '0')
    end
  end
  return evicted, freed, scanned, budget
end

-- make_room for a write: the evictions are noted for the next cleanup report.
local function make_room_for_write(base, max_sessions, max_memory, adding, extra, keep)
  local evicted, freed = make_room(base, max_sessions, max_memory, adding, extra, keep, 1e9)
  if evicted > 0 then
    redis.call('HINCRBY', SIZES, EVICTED, evicted)
    redis.call('HINCRBY', SIZES, EVICTED_BYTES, freed)
  end
  return evicted
end
