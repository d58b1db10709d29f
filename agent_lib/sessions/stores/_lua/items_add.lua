-- Append items to a session's list, creating the session when it does not exist (or
-- has ended), in one script: a data write, so the session's version goes up by one.
-- KEYS[4] session key, KEYS[5] its item list, KEYS[6..] sessions this write may remove
-- to stay under the caps, in pairs of key and item list (none on the first call).
-- ARGV: id, ttl_us, lifetime_us, max_sessions, max_memory, key base, mode ('keep' |
-- 'set': also replace the payload | 'update': replace it, only on a live session),
-- payload, payload size, key overhead, index overhead, list overhead, item overhead,
-- value header bytes, write token, eviction budget, n, then the LRU score of each of
-- the n candidates, then the items. The session's accounted bytes are its payload
-- estimate (with the list's own overhead) plus every item's length and overhead.
-- Returns {1, created, now, length, evicted, version}; {-1} when the session alone
-- would exceed max_memory; {0} when mode 'update' found no live session; {3, ids,
-- scores} when room is needed: call again declaring those sessions.
local id, ttl, lifetime = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_sessions, max_memory, base = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local set_payload, size = ARGV[7] ~= 'keep', tonumber(ARGV[9])
local key_overhead, index_overhead = tonumber(ARGV[10]), tonumber(ARGV[11])
local list_overhead, item_overhead = tonumber(ARGV[12]), tonumber(ARGV[13])
local header_bytes, token, budget = tonumber(ARGV[14]), ARGV[15], tonumber(ARGV[16])
local SCORES = 17
local FIRST = SCORES + tonumber(ARGV[SCORES]) + 1
local now = now_us()
local head = peek(KEYS[4])
local version, born, stored_token
if head then
  version, born, stored_token = parse_header(head)
  if stored_token == token then
    -- this very call's write, retried after a lost reply: it is already applied
    return {1, born, now, redis.call('LLEN', KEYS[5]), 0, version}
  end
end
local added = 0
for i = FIRST, #ARGV do
  added = added + #ARGV[i] + item_overhead
end
local px, live, hlen = 0, false, 0
if head then
  if version then
    hlen = #string.match(head, '^[^\n]*\n')
  end
  version = version or 0
  born = born or tonumber(redis.call('ZSCORE', BORN, id)) or now
  px = pttl_for(now, born, ttl, lifetime)
  live = px > 0
end
if not live and ARGV[7] == 'update' then
  return {0}
end
if not live and redis.call('HEXISTS', SIZES, id) == 1 then
  -- expired, ended or never indexed: its old items go with it, noted as expired
  local freed = remove(base, {id})
  redis.call('HINCRBY', SIZES, DROPPED, 1)
  redis.call('HINCRBY', SIZES, EVICTED_BYTES, freed)
end
local listed = live and redis.call('HEXISTS', SIZES, MARK .. id) == 1
local grow, had = added, 0
if live then
  had = tonumber(redis.call('HGET', SIZES, id) or '0')
  if set_payload then
    local was = redis.call('STRLEN', KEYS[4]) - hlen + header_bytes
    local old_size = math.ceil((#KEYS[4] + was + key_overhead) / 16) * 16
      + index_overhead + 2 * #id
    if listed then
      old_size = old_size + list_overhead
    end
    grow = grow + size - old_size
  elseif not listed then
    grow = grow + list_overhead
  end
else
  grow = grow + size
end
if max_memory > 0 and had + grow > max_memory then
  return {-1}
end
-- a live session only grows in bytes; a new one also counts against max_sessions
local cap_n, adding, keep = max_sessions, 1, false
if live then
  cap_n, adding, keep = 0, 0, id
end
local evicted = 0
if over_caps(cap_n, max_memory, adding, grow) then
  if #KEYS == 5 then
    local ids = room_candidates(now, ttl, lifetime, cap_n, max_memory, adding, grow, keep, budget)
    if #ids[1] > 0 then
      return {3, ids[1], ids[2]}
    end
  else
    evicted = make_room(base, now, lifetime, cap_n, max_memory, adding, grow, 6, SCORES + 1)
  end
end
if live then
  version = version + 1
  local payload = false
  if set_payload then
    payload = ARGV[8]
  end
  rewrite(KEYS[4], version, born, token, payload, px_ms(px))
  redis.call('ZADD', BORN, 'NX', fmt(born), id)
else
  redis.call('UNLINK', KEYS[5])
  born, version = now, 1
  local new_px = px_ms(pttl_for(now, now, ttl, lifetime))
  redis.call('SET', KEYS[4], header(1, now, token) .. ARGV[8], 'PX', new_px)
  redis.call('ZADD', BORN, fmt(now), id)
end
local length = 0
for first = FIRST, #ARGV, CHUNK do
  length = redis.call('RPUSH', KEYS[5], unpack(ARGV, first, math.min(first + CHUNK - 1, #ARGV)))
end
if length == 0 then
  length = redis.call('LLEN', KEYS[5])
end
if not listed and redis.call('HSET', SIZES, MARK .. id, 1) == 1 then
  redis.call('HINCRBY', SIZES, LISTED, 1)
end
note_ttl(ttl)
redis.call('ZADD', LRU, fmt(now), id)
redis.call('HINCRBY', SIZES, id, grow)
redis.call('HINCRBY', SIZES, TOTAL, grow)
return {1, born, now, length, evicted, version}
