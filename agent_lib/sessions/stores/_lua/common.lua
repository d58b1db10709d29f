-- Shared prelude of every session script (prepended by agent_lib.sessions.stores.redis).
-- Times are microseconds. KEYS[1] last-access sorted set (LRU order and idle deadlines),
-- KEYS[2] creation sorted set (absolute lifetime), KEYS[3] hash of size estimates plus
-- the running '*total' field. Every other key a script touches is declared too (KEYS[4]
-- the session of a per-session call and KEYS[5] its item list, then the sessions it may
-- remove, each as a pair of session key and item list), so a script runs on one Cluster
-- slot and a slot migration answers ASK/TRYAGAIN instead of failing it.
local LRU, BORN, SIZES = KEYS[1], KEYS[2], KEYS[3]
local TOTAL = '*total'
-- What writes removed since the last cleanup; a cleanup reports them, then subtracts
-- what it reported once its run has finished (a killed run loses nothing).
local EVICTED, EVICTED_BYTES, DROPPED = '*evicted', '*evicted_bytes', '*expired'
-- The longest idle TTL any writer has given a key of this namespace (us). A key's
-- expiry is never later than its last access plus this, so cleanup knows which index
-- entries point at keys Redis has certainly expired without asking for each key.
local TTL_MAX = '*ttl_max'
-- Redis' own eviction counter (INFO stats) when this index was last checked against
-- its keys, and the rank a running check has reached.
local SEEN, SWEEP = '*evictions_seen', '*sweep'

local function fmt(n)
  return string.format('%d', n)
end

local function note_ttl(ttl)
  if ttl > tonumber(redis.call('HGET', SIZES, TTL_MAX) or '0') then
    redis.call('HSET', SIZES, TTL_MAX, fmt(ttl))
  end
end

-- Microseconds since the epoch (exact in a Lua double); numbers this large must be
-- passed to redis.call through fmt(), which keeps every digit.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- A session value is '~<version>:<born us>:<write token>\n' then the JSON payload: the
-- birth time travels with the session (a lost index entry cannot restart a lifetime),
-- the version makes conditional writes possible, the token recognises a retried create.
-- Values written before this header existed start with the JSON itself (version 0).
local PEEK = 95

local function header(version, born, token)
  return '~' .. fmt(version) .. ':' .. fmt(born) .. ':' .. token .. '\n'
end

-- version, born, token of a value (or of its first PEEK bytes); nil for an old value.
local function parse_header(value)
  if string.byte(value, 1) ~= 126 then
    return nil
  end
  local version, born, token = string.match(value, '^~(%d+):(%d+):([^\n]*)\n')
  return tonumber(version), tonumber(born), token
end

-- The head of a session value without copying its payload; false when the key is gone.
local function peek(key)
  local head = redis.call('GETRANGE', key, 0, PEEK)
  if head == '' then
    return false
  end
  return head
end

-- Store `payload` (or, when nil, the stored value's own payload) under a new header: how
-- item writes (agent_lib.sessions.stores.items) bump the version of a session.
local function rewrite(key, version, born, token, payload, px)
  if not payload then
    payload = redis.call('GET', key)
    if string.byte(payload, 1) == 126 then
      payload = string.sub(payload, string.find(payload, '\n', 1, true) + 1)
    end
  end
  redis.call('SET', key, header(version, born, token) .. payload, 'PX', px)
end

-- Lua's C stack holds about 8000 values, so variadic calls take ids in chunks.
local CHUNK = 1000

local function each_chunk(list, fn)
  for first = 1, #list, CHUNK do
    fn(unpack(list, first, math.min(first + CHUNK - 1, #list)))
  end
end

-- A session's item list (agent_lib.sessions.stores.items) sits beside its key under the
-- same tag, '...:i:<id>', with no TTL of its own; the field MARK .. id in SIZES says the
-- session has had one, and LISTED counts those fields (absent: none), so a cleanup in a
-- namespace without item lists need not look each candidate's mark up. Every script
-- that may remove a session declares its item list right after its key (KEYS[4],
-- KEYS[5]; candidates in pairs after them), so the list goes with the session and no
-- script touches an undeclared key.
local ITEMS = string.sub(LRU, 1, -4) .. 'i:'
local MARK = '*i:'
local LISTED = '*listed'

-- What a session's items add to its size (agent_lib.sessions.stores.items.items_part),
-- kept in its mark field: each item's length plus ITEM_OVERHEAD, plus LIST_OVERHEAD
-- while the list has any item. ITEM_OVERHEAD and LIST_OVERHEAD are set by the line the
-- loader puts before this prelude. A mark of 1 was written before item bytes were kept
-- (a real figure is 0 or over LIST_OVERHEAD): such a list is counted once, here.
-- Returns the part and whether the session has a mark.
local function item_part(id, list)
  local mark = redis.call('HGET', SIZES, MARK .. id)
  if not mark then
    return 0, false
  end
  local part = tonumber(mark)
  if part == 1 then
    part = 0
    for _, item in ipairs(redis.call('LRANGE', list, 0, -1)) do
      part = part + #item + ITEM_OVERHEAD
    end
    if part > 0 then
      part = part + LIST_OVERHEAD
    end
  end
  return part, true
end

-- Keep `part` as the session's item part (marking it as having a list).
local function set_item_part(id, part)
  if redis.call('HSET', SIZES, MARK .. id, fmt(math.max(0, part))) == 1 then
    redis.call('HINCRBY', SIZES, LISTED, 1)
  end
end

-- Set a session's accounted bytes (its payload's estimate plus its item part), keeping
-- the running total in step; neither goes below zero.
local function account(id, size)
  size = math.max(0, size)
  local old = tonumber(redis.call('HGET', SIZES, id) or '0')
  redis.call('HSET', SIZES, id, fmt(size))
  if size ~= old and redis.call('HINCRBY', SIZES, TOTAL, fmt(size - old)) < 0 then
    redis.call('HSET', SIZES, TOTAL, 0)
  end
end

-- Drop index entries of `ids` (nothing else: no key, no item list); returns the bytes
-- they accounted for.
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
  return freed
end

-- Unlink declared session keys and their (declared) item lists and drop their index
-- entries; returns bytes freed and how many session keys existed.
local function remove(base, ids)
  if #ids == 0 then
    return 0, 0
  end
  local keys, lists, marks = {}, {}, {}
  for i, id in ipairs(ids) do
    keys[i] = base .. id
    lists[i] = ITEMS .. id
    marks[i] = MARK .. id
  end
  local existed = 0
  each_chunk(keys, function(...)
    existed = existed + redis.call('UNLINK', ...)
  end)
  each_chunk(lists, function(...)
    redis.call('UNLINK', ...)
  end)
  local unmarked = 0
  each_chunk(marks, function(...)
    unmarked = unmarked + redis.call('HDEL', SIZES, ...)
  end)
  if unmarked > 0 then
    redis.call('HINCRBY', SIZES, LISTED, -unmarked)
  end
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

local function over_caps(max_sessions, max_memory, adding, extra)
  if max_sessions > 0 and redis.call('ZCARD', LRU) + adding > max_sessions then
    return true
  end
  if max_memory > 0 then
    return tonumber(redis.call('HGET', SIZES, TOTAL) or '0') + extra > max_memory
  end
  return false
end

-- The least recently used sessions, among the first `limit` (never `keep`), until
-- removing them would bring the namespace, with `adding` more sessions and `extra` more
-- bytes, within its caps: calls take(id, LRU score) for each; returns how many.
local function least_recent(max_sessions, max_memory, adding, extra, limit, keep, take)
  local over_n = 0
  if max_sessions > 0 then
    over_n = redis.call('ZCARD', LRU) + adding - max_sessions
  end
  local over_b = 0
  if max_memory > 0 then
    over_b = tonumber(redis.call('HGET', SIZES, TOTAL) or '0') + extra - max_memory
  end
  local head = redis.call('ZRANGE', LRU, 0, limit - 1, 'WITHSCORES')
  local n, acc = 0, 0
  for i = 1, #head, 2 do
    if n >= over_n and acc >= over_b then
      break
    end
    local id = head[i]
    if id ~= keep then
      take(id, head[i + 1])
      n = n + 1
      if over_b > 0 then
        acc = acc + tonumber(redis.call('HGET', SIZES, id) or '0')
      end
    end
  end
  return n
end

-- Sessions a write may have to remove so `adding` more and `extra` more bytes fit:
-- first entries the index itself shows dead (idle past the TTL, past the lifetime),
-- then the least recently used; at most `budget`, never `keep`. Nothing is changed:
-- the caller runs again with these keys declared (see make_room). Returns the ids and
-- their LRU scores, so that one touched in between is not evicted.
local function room_candidates(now, ttl, lifetime, max_sessions, max_memory, adding, extra, keep, budget)
  local chosen, scores, seen = {}, {}, {}
  local function take(id, score)
    if id ~= keep and not seen[id] and #chosen < budget then
      seen[id] = true
      chosen[#chosen + 1] = id
      scores[#scores + 1] = score or redis.call('ZSCORE', LRU, id) or '0'
    end
  end
  if lifetime > 0 then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', BORN, '-inf', fmt(now - lifetime), 'LIMIT', 0, budget)) do
      take(id, false)
    end
  end
  local idle = redis.call('ZRANGEBYSCORE', LRU, '-inf', fmt(now - ttl), 'WITHSCORES', 'LIMIT', 0, budget)
  for i = 1, #idle, 2 do
    take(idle[i], idle[i + 1])
  end
  -- one more than the budget: `keep` may be among the least recently used
  least_recent(max_sessions, max_memory, adding, extra, budget + 1, keep, take)
  return {chosen, scores}
end

-- Remove the declared candidate sessions (KEYS[first..] in pairs: session key, item
-- list; their LRU scores from ARGV[score_arg..]) a write needs gone: a dead one (key
-- gone, or past its lifetime) is dropped and noted as expired, never costing a live
-- session its place; a live one is evicted only if nobody touched it since it was
-- chosen and the namespace is still over a cap. Returns how many were evicted.
local function make_room(base, now, lifetime, max_sessions, max_memory, adding, extra, first, score_arg)
  local evicted, dropped, freed = 0, 0, 0
  for k = first, #KEYS, 2 do
    local key = KEYS[k]
    local id = string.sub(key, #base + 1)
    local seen = redis.call('ZSCORE', LRU, id)
    if seen then
      local born = tonumber(redis.call('ZSCORE', BORN, id))
      local dead = redis.call('EXISTS', key) == 0
        or (lifetime > 0 and born ~= nil and born + lifetime <= now)
      if dead then
        local f = remove(base, {id})
        dropped, freed = dropped + 1, freed + f
      elseif
        seen == ARGV[score_arg + (k - first) / 2]
        and over_caps(max_sessions, max_memory, adding, extra)
      then
        local f = remove(base, {id})
        evicted, freed = evicted + 1, freed + f
      end
    end
  end
  if evicted > 0 then
    redis.call('HINCRBY', SIZES, EVICTED, evicted)
  end
  if dropped > 0 then
    redis.call('HINCRBY', SIZES, DROPPED, dropped)
  end
  if freed > 0 then
    redis.call('HINCRBY', SIZES, EVICTED_BYTES, freed)
  end
  return evicted
end

-- Shared records (agent_lib.sessions.stores.records): two hashes under the namespace's
-- tag, '...:r:<rid>' its fields and '...:o:<rid>' its owners (session id -> value), so
-- reading the fields never reads the owners. Never in LRU or BORN (not a session: no
-- max_sessions, no LRU pick, no TTL); its accounted bytes are SIZES[RSIZE .. rid],
-- counted in the total; RECORDS names every record for cleanup, which removes one once
-- none of its owners is a live session. RECORD_OVERHEAD and FIELD_OVERHEAD come from
-- the loader's first line, like the item constants.
local RSIZE = '*r:'

local function entry_cost(name, value)
  return #name + #value + FIELD_OVERHEAD
end

-- Remove a declared record (both hashes) with its accounting; returns the bytes freed.
local function drop_record(records, key, owners_key, rid)
  local size = tonumber(redis.call('HGET', SIZES, RSIZE .. rid) or '0')
  redis.call('UNLINK', key, owners_key)
  redis.call('HDEL', SIZES, RSIZE .. rid)
  redis.call('SREM', records, rid)
  if size ~= 0 and redis.call('HINCRBY', SIZES, TOTAL, fmt(-size)) < 0 then
    redis.call('HSET', SIZES, TOTAL, 0)
  end
  return size
end

-- A record as records_read.lua returns it: {fields, owners (if asked), exists}.
local function read_record(key, owners_key, with_owners)
  local fields, owners = redis.call('HGETALL', key), {}
  if with_owners then
    owners = redis.call('HGETALL', owners_key)
  end
  local exists = 0
  if #fields > 0 or #owners > 0 or redis.call('EXISTS', owners_key) == 1 then
    exists = 1
  end
  return {fields, owners, exists}
end

-- Apply record writes: ARGV from `at` holds, per record, rid, reset ('1'/'0'), owner
-- ('1' then its value, or '0' then ''), n fields, then n name/value pairs; KEYS[first..]
-- hold each record's two hashes (fields, owners) in the same order, `records` the set
-- naming them. `sid` is the writing session.
local function write_records(records, first, at, count, sid)
  for r = 0, count - 1 do
    local key, owners_key, rid = KEYS[first + 2 * r], KEYS[first + 2 * r + 1], ARGV[at]
    local reset, has_owner, owner = ARGV[at + 1] == '1', ARGV[at + 2] == '1', ARGV[at + 3]
    local n = tonumber(ARGV[at + 4])
    local from = at + 5
    at = from + 2 * n
    if reset then
      drop_record(records, key, owners_key, rid)
    end
    if n > 0 or has_owner then
      local before = tonumber(redis.call('HGET', SIZES, RSIZE .. rid) or '0')
      local size = before
      if size == 0 then
        size = RECORD_OVERHEAD + #key + #owners_key
      end
      local function put(hash, name, value)
        local old = redis.call('HSTRLEN', hash, name)
        if old > 0 or redis.call('HEXISTS', hash, name) == 1 then
          size = size - entry_cost(name, '') - old
        end
        redis.call('HSET', hash, name, value)
        size = size + entry_cost(name, value)
      end
      for i = from, at - 1, 2 do
        put(key, ARGV[i], ARGV[i + 1])
      end
      if has_owner then
        put(owners_key, sid, owner)
      end
      redis.call('HSET', SIZES, RSIZE .. rid, fmt(size))
      redis.call('HINCRBY', SIZES, TOTAL, fmt(size - before))
      redis.call('SADD', records, rid)
    end
  end
end
